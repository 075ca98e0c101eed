"""packer/: the cloud-init template the Terraform VMs are cloned from (Debian 12 cloud image)."""

from __future__ import annotations

from anvyl.clusters.generate.terraform import aligned
from anvyl.clusters.spec import ClusterSpec

TEMPLATE = """\
packer {
  required_plugins {
    proxmox = {
      source  = "github.com/hashicorp/proxmox"
      version = ">= 1.2.0"
    }
  }
}

variable "proxmox_url" {
  type        = string
  description = "Proxmox API URL, https://pve:8006/api2/json"
}

variable "proxmox_token_id" {
  type = string
}

variable "proxmox_token_secret" {
  type      = string
  sensitive = true
}

variable "proxmox_node" {
  type = string
}

variable "template_vm_id" {
  type = number
}

variable "storage" {
  type = string
}

variable "bridge" {
  type = string
}

variable "iso_file" {
  type        = string
  description = "An uploaded Debian 12 netinst ISO, e.g. local:iso/debian-12-amd64-netinst.iso"
}

source "proxmox-iso" "debian12" {
  proxmox_url              = var.proxmox_url
  username                 = var.proxmox_token_id
  token                    = var.proxmox_token_secret
  node                     = var.proxmox_node
  insecure_skip_tls_verify = true

  vm_id                = var.template_vm_id
  vm_name              = "anvyl-debian12-cloudinit"
  template_description = "Debian 12 with cloud-init and the QEMU guest agent, built by packer"
  qemu_agent           = true
  cores                = 2
  memory               = 2048
  scsi_controller      = "virtio-scsi-single"
  cloud_init           = true
  cloud_init_storage_pool = var.storage

  boot_iso {
    type     = "scsi"
    iso_file = var.iso_file
    unmount  = true
  }

  disks {
    type         = "scsi"
    disk_size    = "10G"
    storage_pool = var.storage
  }

  network_adapters {
    model  = "virtio"
    bridge = var.bridge
  }

  http_directory = "http"
  boot_wait      = "5s"
  boot_command = [
    "<esc><wait>auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg<enter>",
  ]
  ssh_username = "root"
  ssh_password = "packer"
  ssh_timeout  = "30m"
}

build {
  sources = ["source.proxmox-iso.debian12"]

  provisioner "shell" {
    inline = [
      "apt-get update",
      "apt-get install -y cloud-init qemu-guest-agent",
      "cloud-init clean",
      "passwd -l root",
    ]
  }
}
"""

PRESEED = """\
d-i debian-installer/locale string en_US.UTF-8
d-i keyboard-configuration/xkb-keymap select us
d-i netcfg/choose_interface select auto
d-i mirror/country string manual
d-i mirror/http/hostname string deb.debian.org
d-i mirror/http/directory string /debian
d-i passwd/root-password password packer
d-i passwd/root-password-again password packer
d-i passwd/make-user boolean false
d-i partman-auto/method string regular
d-i partman-auto/choose_recipe select atomic
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
d-i partman/choose_partition select finish
d-i pkgsel/include string openssh-server qemu-guest-agent cloud-init sudo
d-i preseed/late_command string in-target sed -i 's/^#PermitRootLogin.*/PermitRootLogin yes/' /etc/ssh/sshd_config
d-i grub-installer/bootdev string default
d-i finish-install/reboot_in_progress note
"""


def packer_files(spec: ClusterSpec) -> dict[str, str]:
    values = aligned(
        [
            ("proxmox_node", spec.proxmox_node),
            ("template_vm_id", spec.template_vm_id),
            ("storage", spec.storage),
            ("bridge", spec.bridge),
            ("iso_file", "local:iso/debian-12-amd64-netinst.iso"),
        ]
    )
    return {
        "packer/debian12-cloudinit.pkr.hcl": TEMPLATE,
        "packer/variables.auto.pkrvars.hcl": values,
        "packer/http/preseed.cfg": PRESEED,
    }
