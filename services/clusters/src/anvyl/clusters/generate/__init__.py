"""The generated project: Terraform, Ansible and Packer files for a ClusterSpec, as text."""

from __future__ import annotations

import json

from anvyl.clusters.generate.ansible import ansible_files
from anvyl.clusters.generate.packer import packer_files
from anvyl.clusters.generate.terraform import terraform_files
from anvyl.clusters.spec import ClusterSpec

SPEC_FILE = "cluster.json"


def generate_project(
    spec: ClusterSpec,
    *,
    proxmox_endpoint: str = "https://pve:8006/",
    token_id: str = "root@pam!anvyl",  # noqa: S107 (an id: the secret is never written)
) -> dict[str, str]:
    """Every file of the project, relative path to content, in a stable order."""
    files = {
        **terraform_files(spec, proxmox_endpoint, token_id),
        **ansible_files(spec),
        **packer_files(spec),
        SPEC_FILE: json.dumps(spec.model_dump(mode="json"), indent=2) + "\n",
    }
    return dict(sorted(files.items()))
