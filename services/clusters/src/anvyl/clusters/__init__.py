"""Anvyl clusters: intent-driven Kubernetes provisioning on Proxmox."""
