"""Generated projects pass python-hcl2, terraform fmt (where installed), ansible-inventory and
ansible-playbook --syntax-check; their content follows the spec."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
import yaml

from anvyl.clusters.generate import generate_project
from anvyl.clusters.intent import parse_intent
from anvyl.clusters.validate import ValidationFailed, validate_project, write_tree

SPECS = {
    "ha": "HA cluster with monitoring",
    "addons": "production cluster with 2 workers, dashboard, cert-manager, metallb, longhorn and argocd",
    "calico": "staging with calico and ingress",
    "cilium": "dev cluster with cilium on kubernetes 1.30",
    "single": "minimal single-node cluster",
}


@pytest.mark.parametrize("name", list(SPECS))
def test_generated_project_validates(name: str, tmp_path: Path) -> None:
    spec = parse_intent(SPECS[name])
    files = generate_project(spec)
    checks = validate_project(files)
    names = {c.name for c in checks if not c.skipped}
    assert "ansible-inventory --list" in names
    playbooks = "site.yml addons.yml" if spec.addons else "site.yml"
    assert f"ansible-playbook --syntax-check {playbooks}" in names
    if shutil.which("terraform"):
        assert "terraform fmt -check" in names

    main = hcl2.load(io.StringIO(files["terraform/main.tf"]))
    # python-hcl2 keeps the quotes of labels and strings
    vms = {
        k.strip('"'): v
        for r in main["resource"]
        for k, v in r['"proxmox_virtual_environment_vm"'].items()
    }
    assert set(vms) == {"control_plane", "worker"}
    assert vms["worker"]["count"] == "${var.worker_count}"
    assert vms["worker"]["clone"][0]["vm_id"] == "${var.template_vm_id}"
    tfvars = hcl2.load(io.StringIO(files["terraform/terraform.tfvars"]))
    assert tfvars["control_plane_count"] == spec.control_plane_count
    assert tfvars["worker_count"] == spec.worker_count
    ips = [ip.strip('"') for ip in tfvars["control_plane_ips"] + tfvars["worker_ips"]]
    assert ips == spec.addresses()
    assert "proxmox_api_token_secret" not in tfvars  # the secret stays in the environment

    write_tree(tmp_path, files)
    inventory = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", "inventory.ini", "--list"],
        cwd=tmp_path / "ansible", capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    groups = yaml.safe_load(inventory.stdout)
    assert len(groups["control_plane"]["hosts"]) == spec.control_plane_count
    assert len(groups.get("workers", {}).get("hosts", [])) == spec.worker_count
    common = yaml.safe_load(files["ansible/roles/common/defaults/main.yml"])
    assert common["kubernetes_version"] == spec.kubernetes_version
    assert common["pod_cidr"] == spec.pod_cidr
    cp = yaml.safe_load(files["ansible/roles/control_plane/defaults/main.yml"])
    assert (cp["cni"], cp["pod_network_cidr"]) == (spec.cni, spec.pod_cidr)
    if spec.addons:
        tasks = yaml.safe_load(files["ansible/addons.yml"])[0]["tasks"]
        text = yaml.safe_dump(tasks)
        for addon in spec.addons:
            assert addon in text


def test_broken_file_is_refused_before_writing() -> None:
    files = generate_project(parse_intent("dev cluster"))
    files["terraform/main.tf"] += 'resource "x" {\n'
    files["ansible/site.yml"] = (
        "- hosts: all\n  tasks:\n    - ansible.builtin.nonexistent_module: {}\n"
    )
    with pytest.raises(ValidationFailed) as failed:
        validate_project(files)
    message = str(failed.value)
    assert "hcl2 terraform/main.tf" in message
    assert "syntax-check site.yml" in message
