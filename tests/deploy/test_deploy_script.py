"""scripts/deploy.sh against a `gcloud` stand-in that checks each command's flags (gcloud_standin.py),
with its smoke test run against a real orchestrator on loopback; and shellcheck over the scripts."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, running_server

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "scripts" / "deploy.sh"
LLM_KEY = f"sk-llm-{secrets.token_hex(8)}"
MUTATING = ("create", "enable", "deploy", "add-iam-policy-binding", "submit", "delete", "rm")


@dataclass
class Cloud:
    directory: Path
    server: ServerProcess
    api_key: str

    @property
    def log(self) -> Path:
        return self.directory / "calls.jsonl"

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line)["argv"] for line in self.log.read_text().splitlines()]

    def state(self) -> dict:  # type: ignore[type-arg]
        return json.loads((self.directory / "state.json").read_text())

    def deploy(
        self, *args: str, fail: str | None = None, stdin: str = ""
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PATH": f"{self.directory / 'bin'}:{os.environ['PATH']}",
            "GCLOUD_STANDIN_STATE": str(self.directory / "state.json"),
            "GCLOUD_STANDIN_LOG": str(self.log),
            "GCLOUD_STANDIN_RUN_URL": self.server.url,
            "PROJECT_ID": "anvyl-test-project", "REGION": "us-central1", "GCS_BUCKET": "anvyl-test-bucket",
            "LLM_API_KEY": LLM_KEY, "ANVYL_API_KEY": self.api_key,
        }  # fmt: skip
        if fail:
            env["GCLOUD_STANDIN_FAIL"] = fail
        return subprocess.run(["bash", str(DEPLOY), *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    """The stand-in as `gcloud` on PATH, and the orchestrator its Cloud Run URL points at."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(
        f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "gcloud_standin.py"} "$@"\n'
    )
    gcloud.chmod(0o755)
    key = secrets.token_hex(16)
    env = {"ANVYL_DATA_DIR": str(tmp_path / "data"), "ANVYL_WORKSPACE_BACKEND": "local",
           "ANVYL_API_KEYS": key, "ANVYL_INSTANCE": f"deploy-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    with running_server(env, tmp_path / "server.log") as server:
        yield Cloud(tmp_path, server, key)


def command(argv: list[str]) -> str:
    """`run deploy anvyl-hub` for ["run", "deploy", "anvyl-hub", "--image=..."]."""
    return " ".join(a for a in argv if not a.startswith("-"))[:120]


def first(calls: list[list[str]], *words: str) -> int:
    return next(i for i, argv in enumerate(calls) if argv[: len(words)] == list(words))


def test_a_deploy_runs_in_order_keeps_secrets_out_of_arguments_and_its_smoke_test_passes(
    cloud: Cloud,
) -> None:
    done = cloud.deploy()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Anvyl runs at {cloud.server.url}" in done.stdout
    assert "a task succeeded" in done.stdout  # the smoke test's task, on the real orchestrator
    calls = cloud.calls()
    # APIs before any resource; images and secrets before the deploys; the hub before the orchestrator.
    enable = first(calls, "services", "enable")
    resources = [i for i, argv in enumerate(calls) if argv[-1:] != [] and argv[1:2] != ["enable"]
                 and any(word in argv for word in ("create", "submit", "deploy"))]  # fmt: skip
    assert resources and enable < min(resources)
    deploys = [i for i, argv in enumerate(calls) if argv[:2] == ["run", "deploy"]]
    secret_creates = [i for i, argv in enumerate(calls) if argv[:2] == ["secrets", "create"]]
    assert len(secret_creates) == 6 and max(secret_creates) < min(deploys)
    assert first(calls, "builds", "submit") < min(deploys)
    names = [argv[2] for argv in calls if argv[:2] == ["run", "deploy"]]
    assert names == ["anvyl-gpt-oss", "anvyl-mcp-hub", "anvyl-orchestrator"]
    # No secret value in any argument or output: they go through stdin and --set-secrets.
    everything = json.dumps(calls) + done.stdout + done.stderr
    assert LLM_KEY not in everything and cloud.api_key not in everything
    state = cloud.state()
    assert state["secrets"]["anvyl-llm-api-key"] == LLM_KEY
    db_password = state["secrets"]["anvyl-db-password"]
    assert all(not value.endswith("\n") for value in state["secrets"].values())
    assert state["resources"]["sql-user"]["anvyl-db/anvyl"] == db_password  # the generated one
    assert db_password not in done.stdout + done.stderr
    assert state["secrets"]["anvyl-database-url"].endswith(
        "@/anvyl?host=/cloudsql/anvyl-test-project:us-central1:anvyl-db"
    )
    services = state["resources"]["service"]
    gpu = services["anvyl-gpt-oss"]["flags"]
    assert (gpu["--gpu"], gpu["--gpu-type"], gpu["--cpu"], gpu["--memory"]) == (
        "1",
        "nvidia-l4",
        "4",
        "16Gi",
    )
    assert gpu["--no-cpu-throttling"] is True
    assert services["anvyl-mcp-hub"]["flags"]["--ingress"] == "internal"
    orchestrator = services["anvyl-orchestrator"]["flags"]
    assert orchestrator["--add-cloudsql-instances"] == "anvyl-test-project:us-central1:anvyl-db"
    assert "ANVYL_WORKSPACE_BACKEND=cloudrun" in orchestrator["--set-env-vars"]
    assert "ANVYL_GCS_BUCKET=anvyl-test-bucket" in orchestrator["--set-env-vars"]
    assert "LLM_API_KEY=anvyl-llm-api-key:latest" in orchestrator["--set-secrets"]
    # Least privilege: a worker may use its bucket only; the orchestrator's project roles are these.
    worker = "serviceAccount:anvyl-worker@anvyl-test-project.iam.gserviceaccount.com"
    grants = [(where, role) for where, entries in state["policies"].items()
              for role, member in entries if member == worker]  # fmt: skip
    assert grants == [("storage:gs://anvyl-test-bucket", "roles/storage.objectAdmin")]
    orch = "serviceAccount:anvyl-orchestrator@anvyl-test-project.iam.gserviceaccount.com"
    project_roles = {
        role for role, member in state["policies"]["projects:anvyl-test-project"] if member == orch
    }
    assert project_roles == {"roles/run.developer", "roles/cloudsql.client"}
    assert ["roles/iam.serviceAccountUser", orch] in state["policies"][
        "iam:anvyl-worker@anvyl-test-project.iam.gserviceaccount.com"
    ]

    # A second run describes everything and creates nothing.
    before = len(calls)
    again = cloud.deploy()
    assert again.returncode == 0, again.stdout + again.stderr
    second = cloud.calls()[before:]
    changed = [command(argv) for argv in second if any(word in argv for word in MUTATING)]
    assert changed == []
    assert "a task succeeded" in again.stdout


def test_a_failing_step_stops_the_run_and_is_named(cloud: Cloud) -> None:
    done = cloud.deploy(fail="sql instances create")
    assert done.returncode != 0
    assert 'step "Cloud SQL" failed' in done.stderr
    calls = cloud.calls()
    assert calls[-1][:3] == ["sql", "instances", "create"]  # nothing ran after it
    assert not any(argv[:2] == ["run", "deploy"] for argv in calls)
    # Run again once fixed: it goes on from there (what exists is kept and not created twice).
    done = cloud.deploy()
    assert done.returncode == 0, done.stdout + done.stderr
    repeated = [
        argv
        for argv in cloud.calls()[len(calls) :]
        if argv[:3] == ["artifacts", "repositories", "create"]
    ]
    assert repeated == []


def test_a_dry_run_prints_every_command_and_calls_nothing(cloud: Cloud) -> None:
    dry = cloud.deploy("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert cloud.calls() == []  # not even a describe
    assert LLM_KEY not in dry.stdout
    real = cloud.deploy()
    assert real.returncode == 0, real.stdout + real.stderr
    printed = {normal(shlex.split(line)[1:]) for line in dry.stdout.splitlines()
               if line.strip().startswith("gcloud ")}  # fmt: skip
    for argv in cloud.calls():
        if any(word in argv for word in MUTATING):
            assert normal(argv) in printed, command(argv)


def normal(argv: list[str]) -> tuple[str, ...]:
    """A command with the values only a real run knows (a password, a temporary file, the project
    number in the Cloud Run URLs, which a dry run prints as PROJECT_NUMBER) left out."""
    return tuple(
        a.split("=", 1)[0]
        if a.startswith(("--password=", "--config="))
        else a.replace("-123456789.", "-PROJECT_NUMBER.")
        for a in argv
    )


def test_help_and_a_destroy_that_asks_first(cloud: Cloud) -> None:
    shown = subprocess.run(
        ["bash", str(DEPLOY), "--help"], capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0 and "Usage:" in shown.stdout and "--destroy" in shown.stdout
    assert cloud.deploy().returncode == 0
    refused = cloud.deploy("--destroy", stdin="no\n")
    assert refused.returncode != 0 and "nothing deleted" in refused.stderr
    assert cloud.state()["resources"]["service"]
    removed = cloud.deploy("--destroy", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    left = {kind: names for kind, names in cloud.state()["resources"].items() if names and kind not in
            ("sql-database", "sql-user")}  # fmt: skip
    assert left == {}


def test_the_scripts_are_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is missing: apt-get install shellcheck (scripts/setup-system.sh)")
    scripts = sorted(
        str(p) for p in [*(ROOT / "scripts").glob("*.sh"), *(ROOT / "dockerfiles").glob("*.sh")]
    )
    done = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
