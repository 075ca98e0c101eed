"""terraform/: VMs on the bpg/proxmox provider, cloned from the cloud-init template, per node type."""

from __future__ import annotations

import json

from anvyl.clusters.spec import ClusterSpec

PROVIDER_VERSION = "~> 0.66"

MAIN_TF = """\
terraform {
  required_version = ">= 1.5"
  required_providers {
    proxmox = {
      source  = "bpg/proxmox"
      version = "%(provider_version)s"
    }
  }
}

provider "proxmox" {
  endpoint  = var.proxmox_endpoint
  api_token = "${var.proxmox_api_token_id}=${var.proxmox_api_token_secret}"
  insecure  = var.proxmox_insecure
}

locals {
  ssh_public_key = trimspace(file(pathexpand(var.ssh_public_key_file)))
}
%(vms)s"""

VM_BLOCK = """
resource "proxmox_virtual_environment_vm" "%(kind)s" {
  count     = var.%(kind)s_count
  name      = "${var.cluster_name}-%(short)s-${count.index + 1}"
  node_name = var.proxmox_node
  tags      = ["anvyl", var.cluster_name, "%(tag)s"]
  on_boot   = true

  clone {
    vm_id = var.template_vm_id
    full  = true
  }

  agent {
    enabled = true
  }

  cpu {
    cores = var.%(kind)s_cores
    type  = "host"
  }

  memory {
    dedicated = var.%(kind)s_memory_mb
  }

  disk {
    datastore_id = var.storage
    interface    = "scsi0"
    size         = var.disk_gb
  }

  network_device {
    bridge = var.bridge
  }

  initialization {
    datastore_id = var.storage
    ip_config {
      ipv4 {
        address = "${var.%(kind)s_ips[count.index]}/${var.network_prefix}"
        gateway = var.gateway
      }
    }
    user_account {
      username = var.ssh_user
      keys     = [local.ssh_public_key]
    }
  }
}
"""

# (name, type, description, default or None)
VARIABLES: list[tuple[str, str, str, str | None]] = [
    ("proxmox_endpoint", "string", "Proxmox API URL, e.g. https://pve:8006/", None),
    ("proxmox_api_token_id", "string", "API token id, user@realm!name", None),
    ("proxmox_api_token_secret", "string", "API token secret", None),
    ("proxmox_insecure", "bool", "Accept a self-signed Proxmox certificate", "true"),
    ("proxmox_node", "string", "Proxmox node the VMs run on", None),
    ("template_vm_id", "number", "VM id of the cloud-init template (built by packer/)", None),
    ("storage", "string", "Datastore for disks and cloud-init drives", None),
    ("bridge", "string", "Network bridge", None),
    ("cluster_name", "string", "Prefix of the VM names", None),
    ("control_plane_count", "number", "Control-plane VMs", None),
    ("control_plane_cores", "number", "vCPUs per control-plane VM", None),
    ("control_plane_memory_mb", "number", "Memory per control-plane VM (MiB)", None),
    ("control_plane_ips", "list(string)", "Control-plane addresses, in order", None),
    ("worker_count", "number", "Worker VMs", None),
    ("worker_cores", "number", "vCPUs per worker VM", None),
    ("worker_memory_mb", "number", "Memory per worker VM (MiB)", None),
    ("worker_ips", "list(string)", "Worker addresses, in order", None),
    ("disk_gb", "number", "Disk per VM (GB)", None),
    ("ip_start", "string", "First node address", None),
    ("network_prefix", "number", "Prefix length of the node network", None),
    ("gateway", "string", "Default gateway of the nodes", None),
    ("ssh_user", "string", "User cloud-init creates", None),
    ("ssh_public_key_file", "string", "Public key cloud-init installs", None),
]
SENSITIVE = {"proxmox_api_token_secret"}

OUTPUTS_TF = """\
output "control_plane_ips" {
  description = "Addresses of the control-plane VMs"
  value       = var.control_plane_ips
}

output "worker_ips" {
  description = "Addresses of the worker VMs"
  value       = var.worker_ips
}

output "vm_ids" {
  description = "Proxmox VM ids, control planes then workers"
  value = concat(
    proxmox_virtual_environment_vm.control_plane[*].vm_id,
    proxmox_virtual_environment_vm.worker[*].vm_id,
  )
}
"""


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(str(value))


def aligned(pairs: list[tuple[str, object]], indent: str = "") -> str:
    """``key = value`` lines with the equals signs aligned, as ``terraform fmt`` writes them."""
    width = max(len(key) for key, _ in pairs)
    return "".join(f"{indent}{key.ljust(width)} = {_value(value)}\n" for key, value in pairs)


def main_tf(spec: ClusterSpec) -> str:
    vms = VM_BLOCK % {"kind": "control_plane", "short": "cp", "tag": "control-plane"}
    vms += VM_BLOCK % {"kind": "worker", "short": "worker", "tag": "worker"}
    return MAIN_TF % {"provider_version": PROVIDER_VERSION, "vms": vms}


def variables_tf() -> str:
    blocks = []
    for name, kind, description, default in VARIABLES:
        lines = f"  type        = {kind}\n  description = {json.dumps(description)}\n"
        if default is not None:
            lines += f"  default     = {default}\n"
        if name in SENSITIVE:
            lines += "  sensitive   = true\n"
        blocks.append(f'variable "{name}" {{\n{lines}}}\n')
    return "\n".join(blocks)


def tfvars(spec: ClusterSpec, proxmox_endpoint: str, token_id: str) -> str:
    """The generated values; the token secret stays out (TF_VAR_proxmox_api_token_secret)."""
    header = (
        "# Generated by anvyl cluster create. The API token secret is not written here: export\n"
        "# TF_VAR_proxmox_api_token_secret (the pipeline does it from PROXMOX_API_TOKEN_SECRET).\n"
    )
    pairs: list[tuple[str, object]] = [
        ("proxmox_endpoint", proxmox_endpoint),
        ("proxmox_api_token_id", token_id),
        ("proxmox_node", spec.proxmox_node),
        ("template_vm_id", spec.template_vm_id),
        ("storage", spec.storage),
        ("bridge", spec.bridge),
        ("cluster_name", spec.name),
        ("control_plane_count", spec.control_plane_count),
        ("control_plane_cores", spec.control_plane_cores),
        ("control_plane_memory_mb", spec.control_plane_memory_mb),
        ("control_plane_ips", spec.control_plane_ips()),
        ("worker_count", spec.worker_count),
        ("worker_cores", spec.worker_cores),
        ("worker_memory_mb", spec.worker_memory_mb),
        ("worker_ips", spec.worker_ips()),
        ("disk_gb", spec.disk_gb),
        ("ip_start", spec.ip_start),
        ("network_prefix", spec.network_prefix),
        ("gateway", spec.gateway),
        ("ssh_user", spec.ssh_user),
        ("ssh_public_key_file", spec.ssh_public_key_file),
    ]
    return header + aligned(pairs)


def terraform_files(spec: ClusterSpec, proxmox_endpoint: str, token_id: str) -> dict[str, str]:
    return {
        "terraform/main.tf": main_tf(spec),
        "terraform/variables.tf": variables_tf(),
        "terraform/outputs.tf": OUTPUTS_TF,
        "terraform/terraform.tfvars": tfvars(spec, proxmox_endpoint, token_id),
    }
