"""The hub's MCP servers, one per concern: infra, docker, proxmox."""
