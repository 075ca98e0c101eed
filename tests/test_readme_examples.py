"""Docs are contracts: every YAML example in every README starts a real orchestrator as written.

A YAML block is a configuration file for ANVYL_CONFIG unless its first line is a comment naming
another file (`# docker-compose.yml`, say), which the tests of that file read. An example for the
cloudrun backend runs against the local Cloud Run and GCS stand-ins of tests/workspaces_cloud (the
real Google client libraries on our side); the variables that point it at them win over the file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.helpers import running_server
from tests.workspaces_cloud.conftest import (  # noqa: F401 (fixtures of the cloudrun examples)
    PROJECT,
    fake_cloud,
    gcs_emulator,
    service_account_file,
    worker_farm,
)

ROOT = Path(__file__).resolve().parents[1]
_SKIP_DIRS = {".venv", ".venv-cognee", ".git", "node_modules"}
_YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_files() -> list[Path]:
    return sorted(
        path for path in ROOT.rglob("*.md")
        if not _SKIP_DIRS.intersection(path.relative_to(ROOT).parts)
    )  # fmt: skip


def config_examples() -> list[tuple[str, str]]:
    found = []
    for path in readme_files():
        text = path.read_text(encoding="utf-8")
        for match in _YAML_BLOCK.finditer(text):
            block = match.group(1)
            if re.match(r"#\s*[\w.-]+\.ya?ml\b", block) and not block.startswith("# anvyl.yaml"):
                continue  # another file's example
            line = text[: match.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", block))
    return found


def test_the_readmes_have_configuration_examples() -> None:
    assert any(where.startswith("README.md:") for where, _ in config_examples())


@pytest.mark.parametrize(("where", "block"), config_examples(), ids=lambda v: str(v)[:60])
def test_the_server_starts_with_each_readme_configuration(
    where: str, block: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config = tmp_path / "anvyl.yaml"
    config.write_text(block)
    env = {
        "ANVYL_CONFIG": str(config),
        "ANVYL_DATA_DIR": str(tmp_path / "data"),
        "ANVYL_WORKSPACE_BACKEND": "local",
        "ANVYL_INSTANCE": f"readme-{uuid.uuid4().hex[:8]}",
    }
    workspace = (yaml.safe_load(block) or {}).get("workspace") or {}
    if workspace.get("type") == "cloudrun":
        env |= cloud_stand_ins(request, workspace)
    shown = subprocess.run(
        [sys.executable, "-m", "anvyl.orchestrator", "config", "show"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, f"{where}: {shown.stdout}{shown.stderr}"
    with running_server(env, tmp_path / "server.log") as server:
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        assert ready.status_code == 200, f"{where}: {ready.text}\n{server.log.read_text()}"


def cloud_stand_ins(request: pytest.FixtureRequest, workspace: dict[str, str]) -> dict[str, str]:
    """Cloud Run and GCS on loopback for a cloudrun example, with the bucket it names."""
    fake = request.getfixturevalue("fake_cloud")
    request.getfixturevalue("service_account_file")
    request.getfixturevalue("gcs_emulator")
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
    try:
        client.create_bucket(workspace["gcs_bucket"])
    finally:
        client.close()
    return {"ANVYL_CLOUDRUN_API_ENDPOINT": fake.base_url}


_BASH_BLOCK = re.compile(r"^[ \t]*```bash\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def curl_commands(path: Path) -> list[str]:
    """Each `curl` command of the file's bash blocks, its continuation lines joined."""
    commands = []
    for block in _BASH_BLOCK.findall(path.read_text(encoding="utf-8")):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [
            line.strip() for line in joined.splitlines() if line.strip().startswith("curl")
        ]
    return commands


def test_each_curl_of_the_readme_answers_and_its_tasks_succeed(tmp_path: Path) -> None:
    """The README's curl commands as written, against a real server: its address and the
    placeholder repositories (a path, the deployment guide's GitHub URL: no internet here) are the
    only things replaced."""
    from anvyl.orchestrator.cli.demo import create_sample_repo

    commands = curl_commands(ROOT / "README.md")
    assert len(commands) >= 2
    repo = create_sample_repo(tmp_path)
    env = {"ANVYL_DATA_DIR": str(tmp_path / "data"), "ANVYL_WORKSPACE_BACKEND": "local",
           "ANVYL_INSTANCE": f"readme-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    with running_server(env, tmp_path / "server.log") as server:
        for command in commands:
            runnable = (command.replace("http://localhost:8080", server.url)
                        .replace("localhost:8080", server.url)
                        .replace("/path/to/a/git/repo", str(repo))
                        .replace("https://github.com/example/repo", str(repo)))  # fmt: skip
            done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True,
                                  timeout=180)  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stderr}"
            answer = _last_answer(done.stdout)
            assert "detail" not in answer, f"{command}\n{answer}"  # an error's body
            if "task_id" in answer:
                assert answer["status"] == "succeeded", f"{command}\n{answer}"
            if "jsonrpc" in answer:  # A2A: no JSON-RPC error, and a task that completed
                assert "error" not in answer, f"{command}\n{answer}"
                result = answer["result"]
                status = (result.get("task") or result.get("statusUpdate") or {}).get("status")
                if status is not None:
                    assert status["state"] == "TASK_STATE_COMPLETED", f"{command}\n{answer}"


def _last_answer(stdout: str) -> dict[str, Any]:
    """The JSON answer, or the last event of an event stream (`data: ...` lines)."""
    events = [line[5:] for line in stdout.splitlines() if line.startswith("data:")]
    found: dict[str, Any] = json.loads(events[-1] if events else stdout)
    return found


def doc_commands(path: Path) -> list[str]:
    """Each `curl` and `uv run anvyl` command of the file's bash blocks, continuation lines joined
    (docs/agents.md's run in order against a server configured with its first YAML block)."""
    commands = []
    for block in _BASH_BLOCK.findall(path.read_text(encoding="utf-8")):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines()
                     if line.strip().startswith(("curl ", "uv run anvyl "))]  # fmt: skip
    return commands


def test_each_command_of_docs_agents_runs_and_its_tasks_succeed(tmp_path: Path) -> None:
    from anvyl.orchestrator.cli.demo import create_sample_repo
    from tests.helpers import ANVYL

    doc = ROOT / "docs" / "agents.md"
    commands = doc_commands(doc)
    assert len(commands) >= 10 and any("anvyl memory search" in c for c in commands)
    config = tmp_path / "anvyl.yaml"
    config.write_text(_YAML_BLOCK.findall(doc.read_text(encoding="utf-8"))[0])
    repo = create_sample_repo(tmp_path)
    env = {"ANVYL_CONFIG": str(config), "ANVYL_DATA_DIR": str(tmp_path / "data"),
           "ANVYL_WORKSPACE_BACKEND": "local", "ANVYL_INSTANCE": f"docs-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    with running_server(env, tmp_path / "server.log") as server:
        client_env = os.environ | env | {"ANVYL_URL": server.url}
        try:
            for command in commands:
                runnable = (command.replace("http://localhost:8080", server.url)
                        .replace("localhost:8080", server.url)
                            .replace("/path/to/a/git/repo", str(repo))
                            .replace("uv run anvyl ", f"{ANVYL} "))  # fmt: skip
                done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True,
                                      timeout=180, env=client_env)  # fmt: skip
                assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
                if command.startswith("curl"):
                    answer = json.loads(done.stdout)
                    assert "detail" not in answer, f"{command}\n{answer}"  # an error's body
                    if "task_id" in answer:
                        assert answer["status"] == "succeeded", f"{command}\n{answer}"
                elif " orchestrate " in command or " act " in command:
                    assert "succeeded" in done.stdout, f"{command}\n{done.stdout}"
        finally:
            subprocess.run([ANVYL, "agent", "remove", "infra-agent", "--force", "--purge"],
                           capture_output=True, timeout=60, env=client_env)  # fmt: skip


def cluster_commands() -> list[tuple[str, str]]:
    """Each `uv run anvyl cluster` line of the READMEs' bash blocks (the `|` usage line aside)."""
    found = []
    for path in readme_files():
        for block in _BASH_BLOCK.findall(path.read_text(encoding="utf-8")):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                command = line.split("  #", 1)[0].strip()
                if command.startswith("uv run anvyl cluster ") and "|" not in command:
                    found.append((str(path.relative_to(ROOT)), command))
    return found


def test_each_cluster_example_of_the_readmes_runs(tmp_path: Path) -> None:
    """The `anvyl cluster` examples as written (no Proxmox and no model here: the parser, with
    defaults); they write nothing, and a dry run says so."""
    commands = cluster_commands()
    assert any(where == "README.md" for where, _ in commands)
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANVYL_CONFIG", "OLLAMA_URL") and not k.startswith("PROXMOX_")}  # fmt: skip
    for where, command in commands:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env={**env, "UV_PROJECT": str(ROOT)})  # fmt: skip
        assert done.returncode == 0, f"{where}: {command}\n{done.stdout}\n{done.stderr}"
        assert "Cluster" in done.stdout or '"spec"' in done.stdout, f"{where}: {command}"
        if "--json" in command:
            assert json.loads(done.stdout)["checks"]
    assert list(tmp_path.iterdir()) == []


def memory_commands(path: Path) -> list[str]:
    """Each `anvyl memory` command of the file's bash blocks."""
    return [line.strip() for block in _BASH_BLOCK.findall(path.read_text(encoding="utf-8"))
            for line in block.splitlines() if line.strip().startswith("uv run anvyl memory")]  # fmt: skip


def test_each_anvyl_memory_command_of_the_readme_runs(tmp_path: Path) -> None:
    """The README's `anvyl memory` commands as written, in the repository's root, against a real
    server (`uv run anvyl` is this interpreter's `anvyl`): the search finds what the index read."""
    commands = memory_commands(ROOT / "README.md")
    assert any(" index " in c for c in commands) and any(" search " in c for c in commands)
    env = {"ANVYL_DATA_DIR": str(tmp_path / "data"), "ANVYL_WORKSPACE_BACKEND": "local",
           "ANVYL_INSTANCE": f"readme-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    outputs = []
    with running_server(env, tmp_path / "server.log") as server:
        for command in commands:
            runnable = command.replace("uv run anvyl", f"{sys.executable} -m anvyl.orchestrator", 1)
            done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, cwd=ROOT,
                                  env=os.environ | {"ANVYL_URL": server.url, "COLUMNS": "200"},
                                  timeout=180)  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
    assert "done" in outputs[0] and "README.md" in outputs[1], outputs
