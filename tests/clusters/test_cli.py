"""`anvyl cluster` as a user runs it (the console script): preview, dry run, create, user edits,
and --apply with Packer/Terraform/SSH/Ansible stand-ins on PATH that record their arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clusters.fake_pve import TOKEN_ID, TOKEN_SECRET, FakePve

ANVYL = str(Path(sys.executable).parent / "anvyl")
_MODEL_VARS = ("ANVYL_CONFIG", "OLLAMA_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "XAI_API_KEY",
               "GROQ_API_KEY", "ANVYL_GPT_OSS_URL", "ANVYL_LMSTUDIO_URL")  # fmt: skip
STAND_IN = """#!/bin/sh
# Records how it was called; fails when $FAIL_TOOL_ARGS matches "name args".
echo "$(basename "$0") $* [cwd=$(basename "$PWD")]" >> "$RECORD"
case "$(basename "$0") $*" in
  $FAIL_TOOL_ARGS) echo "simulated failure of $(basename "$0") $*" >&2; exit 3;;
esac
echo "ok"
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in _MODEL_VARS and not k.startswith("PROXMOX_")
    }
    return {**env, "COLUMNS": "200", **extra}


def anvyl(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANVYL, "cluster", *args], capture_output=True, text=True, timeout=300,
                          env=env or clean_env(), cwd=cwd, input=input)  # fmt: skip


@pytest.fixture
def stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("packer", "terraform", "ssh", "ansible-playbook"):
        (bin_dir / tool).write_text(STAND_IN)
        (bin_dir / tool).chmod(0o755)
    return bin_dir, tmp_path / "calls.log"


def test_preview_json() -> None:
    done = anvyl("preview", "HA cluster with monitoring", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["source"] == "parser"
    assert plan["spec"]["control_plane_count"] == 3 and plan["spec"]["addons"] == ["prometheus"]
    assert plan["summary"] == "3 CP + 3 workers, 4 cores, 8GB, prometheus"
    assert "terraform/main.tf" in plan["contents"] and "ansible/addons.yml" in plan["files"]
    assert any("Proxmox not configured" in w for w in plan["warnings"])
    assert all(c["ok"] for c in plan["checks"])


@pytest.mark.parametrize("intent", ["", "-3 workers", "1000 workers"])
def test_bad_intents_exit_2_with_the_reason(intent: str) -> None:
    done = anvyl("preview", "--", intent)  # "--": an intent may start with "-"
    assert done.returncode == 2
    assert "error:" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    done = anvyl(
        "create", "production HA cluster with ingress", "--dry-run", "--out", str(tmp_path / "proj")
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "proj").exists()
    for path in (
        "terraform/main.tf",
        "terraform/terraform.tfvars",
        "ansible/inventory.ini",
        "ansible/addons.yml",
        "packer/debian12-cloudinit.pkr.hcl",
    ):
        assert f"{path}  (would create)" in done.stdout
    assert "terraform apply -input=false -auto-approve tfplan" in done.stdout
    assert "ansible-playbook -i inventory.ini site.yml" in done.stdout
    assert "nothing was written" in done.stdout


def test_create_asks_and_keeps_user_edits(tmp_path: Path) -> None:
    out = tmp_path / "proj"
    asked = anvyl("create", "--out", str(out), input="dev cluster\nn\n")
    assert "Describe the cluster" in asked.stdout and asked.returncode == 1
    assert not out.exists()
    done = anvyl("create", "dev cluster", "--yes", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    tfvars = out / "terraform/terraform.tfvars"
    assert "worker_count            = 1" in tfvars.read_text()
    tfvars.write_text(
        tfvars.read_text().replace(
            'proxmox_node            = "pve"', 'proxmox_node            = "pve-lab"'
        )
    )
    again = anvyl("create", "dev cluster with 3 workers", "--yes", "--out", str(out))
    assert again.returncode == 0
    assert "you edited it; not overwritten" in again.stdout
    assert '-proxmox_node            = "pve-lab"' in again.stdout  # the diff is shown
    assert "pve-lab" in tfvars.read_text()
    assert "dev-worker-3" in (out / "ansible/inventory.ini").read_text()  # unedited files follow
    forced = anvyl("create", "dev cluster with 3 workers", "--yes", "--force", "--out", str(out))
    assert forced.returncode == 0 and "pve-lab" not in tfvars.read_text()


def test_apply_runs_the_pipeline_stops_at_a_failure_and_continues(
    tmp_path: Path, stand_ins: tuple[Path, Path]
) -> None:
    bin_dir, record = stand_ins
    out = tmp_path / "proj"
    env = clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", RECORD=str(record),
                    FAIL_TOOL_ARGS="terraform apply*")  # fmt: skip
    failed = anvyl("create", "dev cluster", "--yes", "--apply", "--out", str(out), env=env)
    assert failed.returncode == 1
    assert "step terraform-apply failed: terraform exited with 3" in failed.stdout
    assert "simulated failure" in (out / ".anvyl/logs/terraform-apply.log").read_text()
    # validation ran the terraform on PATH too (fmt -check); the pipeline's calls follow
    calls = [c for c in record.read_text().splitlines() if not c.startswith("terraform fmt")]
    assert [c.split(" [")[0] for c in calls] == [
        "packer init .",
        "packer build -var proxmox_url=https://pve:8006/api2/json -var proxmox_token_id=root@pam!anvyl .",
        "terraform init -input=false",
        "terraform plan -input=false -out=tfplan",
        "terraform apply -input=false -auto-approve tfplan",
    ]
    assert calls[0].endswith("[cwd=packer]") and calls[2].endswith("[cwd=terraform]")

    record.unlink()
    env["FAIL_TOOL_ARGS"] = "no-such-call"
    done = anvyl("create", "dev cluster", "--yes", "--apply", "--out", str(out), env=env)
    assert done.returncode == 0, done.stdout
    calls = [
        c.split(" [")[0]
        for c in record.read_text().splitlines()
        if not c.startswith("terraform fmt")
    ]
    assert calls == [
        "terraform plan -input=false -out=tfplan",
        "terraform apply -input=false -auto-approve tfplan",
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5 -i ~/.ssh/id_ed25519 ubuntu@192.168.1.100 true",
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5 -i ~/.ssh/id_ed25519 ubuntu@192.168.1.101 true",
        "ansible-playbook -i inventory.ini site.yml",
    ]
    assert "packer-init: skipped" in done.stdout and "provisioned" in done.stdout


def test_apply_with_proxmox_skips_packer_and_keeps_the_secret_out(
    tmp_path: Path, stand_ins: tuple[Path, Path], fake_pve: tuple[FakePve, str]
) -> None:
    bin_dir, record = stand_ins
    out = tmp_path / "proj"
    env = clean_env(
        PATH=f"{bin_dir}:{os.environ['PATH']}", RECORD=str(record), FAIL_TOOL_ARGS="none"
    )
    done = anvyl("create", "dev cluster", "--yes", "--apply", "--out", str(out),
                 "--proxmox-url", fake_pve[1], "--proxmox-token-id", TOKEN_ID,
                 "--proxmox-token-secret", TOKEN_SECRET, env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout
    calls = record.read_text()
    assert "packer" not in calls and "terraform apply" in calls  # template 9000 exists on the host
    assert "ubuntu@192.168.1.104" in calls  # the first free range
    assert TOKEN_SECRET not in calls
    for path in out.rglob("*"):
        if path.is_file():
            assert TOKEN_SECRET not in path.read_text(errors="replace"), path
    assert (
        f'proxmox_api_token_id    = "{TOKEN_ID}"'
        in (out / "terraform/terraform.tfvars").read_text()
    )
