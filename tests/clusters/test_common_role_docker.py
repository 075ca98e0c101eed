"""The generated `common` role applied in check mode to containers of the local base image,
through Ansible's docker connection (community.docker, from the `ansible` package)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from anvyl.clusters.generate import generate_project
from anvyl.clusters.intent import parse_intent
from anvyl.clusters.validate import write_tree

BASE_IMAGE = os.environ.get("ANVYL_TEST_BASE_IMAGE", "anvyl/base:bookworm")
LABEL = {"anvyl.test": "clusters"}
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

pytestmark = pytest.mark.docker


@pytest.fixture
def nodes() -> Iterator[list[str]]:
    """Two bookworm containers with python3-apt (the apt module needs it, even to check)."""
    client = docker.from_env(timeout=120)
    created = []
    try:
        for role in ("cp", "worker"):
            # host network: containers reach Debian's mirror only that way here
            container = client.containers.run(
                BASE_IMAGE, ["sleep", "900"], detach=True, network_mode="host", labels=LABEL,
                name=f"clusters-{role}-{secrets.token_hex(3)}",
            )  # fmt: skip
            created.append(container)
        for container in created:
            code, output = container.exec_run(
                ["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                 "apt-get install -y -qq --no-install-recommends python3-apt"],
            )  # fmt: skip
            assert code == 0, output.decode(errors="replace")[-2000:]
        yield [c.name for c in created]
    finally:
        for container in created:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        client.close()


def test_common_role_in_check_mode(nodes: list[str], tmp_path: Path) -> None:
    write_tree(tmp_path, generate_project(parse_intent("dev cluster")))
    ansible = tmp_path / "ansible"
    (ansible / "containers.ini").write_text(
        "[k8s_cluster]\n"
        + "".join(
            f"{name} ansible_connection=community.docker.docker "
            "ansible_python_interpreter=/usr/bin/python3\n"
            for name in nodes
        )
    )
    (ansible / "common-only.yml").write_text(
        "- name: Prepare every node for kubeadm\n  hosts: k8s_cluster\n  roles: [common]\n"
    )
    done = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "containers.ini", "common-only.yml", "--check", "--forks", "2"],
        cwd=ansible, capture_output=True, text=True, timeout=600,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(tmp_path / ".ansible")},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for name in nodes:
        recap = re.search(
            rf"^{name}\s*: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0", output, re.M
        )
        assert recap, output[-3000:]
        assert int(recap.group(2)) >= 3  # the module, sysctl and containerd files would change
    assert "Packages for the Kubernetes repository and the container runtime" in output
    # check mode changed nothing on the nodes
    client = docker.from_env(timeout=60)
    try:
        for name in nodes:
            code, _ = client.containers.get(name).exec_run(
                ["test", "-e", "/etc/sysctl.d/99-kubernetes.conf"]
            )
            assert code != 0
    finally:
        client.close()
