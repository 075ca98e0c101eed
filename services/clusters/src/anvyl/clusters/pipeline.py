"""--apply: Packer (when the template is missing), Terraform init/plan/apply, SSH, Ansible.

Each step logs to ``.anvyl/logs/STEP.log``. A failed step stops the run and names itself and the
end of its log. ``.anvyl/pipeline.json`` records finished steps with a fingerprint of the project,
so a second run skips what is done and unchanged and continues at the step that failed.
Secrets travel in the environment (TF_VAR_*, PKR_VAR_*), never on a command line or in a log.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from anvyl.clusters.discovery import ProxmoxConfig
from anvyl.clusters.spec import ClusterSpec
from anvyl.clusters.writer import RECORD, STATE_DIR

STATE = ".anvyl/pipeline.json"
LOGS = ".anvyl/logs"
Progress = Callable[[str, str], None]  # (step, status: start|done|skipped|failed|waiting)


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    cwd: str  # relative to the project root
    timeout_s: float
    inputs: tuple[str, ...]  # directories whose files make the step's fingerprint
    redo: tuple[str, ...] = ()  # earlier steps to run again when this one fails

    def display(self) -> str:
        return f"(cd {self.cwd} && {' '.join(self.argv)})"


class PipelineError(Exception):
    def __init__(self, step: str, why: str, log: Path | None) -> None:
        self.step, self.why, self.log = step, why, log
        where = f" (log: {log})" if log else ""
        super().__init__(f"step {step} failed: {why}{where}")


@dataclass
class PipelineResult:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def steps_for(
    spec: ClusterSpec, proxmox: ProxmoxConfig | None, *, build_template: bool
) -> list[Step]:
    url = proxmox.api_url if proxmox else "https://pve:8006/api2/json"
    token_id = proxmox.token_id if proxmox else "root@pam!anvyl"
    steps = []
    if build_template:
        steps += [
            Step("packer-init", ["packer", "init", "."], "packer", 600, ("packer",)),
            Step(
                "packer-build",
                ["packer", "build", "-var", f"proxmox_url={url}", "-var",
                 f"proxmox_token_id={token_id}", "."],
                "packer", 3600, ("packer",),
            ),
        ]  # fmt: skip
    steps += [
        Step("terraform-init", ["terraform", "init", "-input=false"], "terraform", 600, ("terraform",)),
        Step("terraform-plan", ["terraform", "plan", "-input=false", "-out=tfplan"], "terraform", 600, ("terraform",)),
        Step("terraform-apply", ["terraform", "apply", "-input=false", "-auto-approve", "tfplan"], "terraform", 1800, ("terraform",), ("terraform-plan",)),
        Step("wait-ssh", ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                          "-o", "ConnectTimeout=5", "-i", spec.ssh_private_key_file,
                          f"{spec.ssh_user}@<each node>", "true"], ".", 600, ("terraform",)),
        Step("ansible", ["ansible-playbook", "-i", "inventory.ini", "site.yml"], "ansible", 3600, ("ansible",)),
    ]  # fmt: skip
    return steps


def _fingerprint(root: Path, inputs: tuple[str, ...]) -> str:
    """The generated files under ``inputs`` as last written (their recorded hashes), so what
    the tools add there (state, lock files, plans) does not count as a change."""
    try:
        record = json.loads((root / STATE_DIR / RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    digest = hashlib.sha256()
    for path, value in sorted(record.items()):
        if any(path.startswith(directory + "/") for directory in inputs):
            digest.update(f"{path}\0{value}\n".encode())
    return digest.hexdigest()


def _state(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / STATE).read_text())
        return {str(k): str(v) for k, v in data.get("completed", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _save(root: Path, completed: dict[str, str]) -> None:
    (root / STATE).parent.mkdir(parents=True, exist_ok=True)
    (root / STATE).write_text(json.dumps({"completed": completed}, indent=2) + "\n")


def _environment(proxmox: ProxmoxConfig | None) -> dict[str, str]:
    env = dict(os.environ)
    if proxmox:
        env["TF_VAR_proxmox_api_token_secret"] = proxmox.token_secret
        env["PKR_VAR_proxmox_token_secret"] = proxmox.token_secret
    env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "False")
    return env


def _run_logged(step: Step, argv: list[str], root: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(
                argv, cwd=root / step.cwd, stdout=out, stderr=subprocess.STDOUT,
                timeout=step.timeout_s, env=env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except FileNotFoundError:
            raise PipelineError(
                step.name, f"{argv[0]} is not installed (not on PATH)", log
            ) from None
        except subprocess.TimeoutExpired:
            raise PipelineError(step.name, f"no result after {step.timeout_s:.0f}s", log) from None
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise PipelineError(
            step.name, f"{argv[0]} exited with {done.returncode}: " + " | ".join(tail), log
        )


def _wait_ssh(step: Step, spec: ClusterSpec, root: Path, env: dict[str, str], log: Path,
              progress: Progress, deadline_s: float, interval_s: float) -> None:  # fmt: skip
    pending = spec.addresses()
    deadline = time.monotonic() + deadline_s
    while pending:
        address = pending[0]
        argv = [part.replace("<each node>", address) for part in step.argv]
        try:
            _run_logged(step, argv, root, env, log)
        except PipelineError as exc:
            if "not installed" in exc.why or time.monotonic() > deadline:
                raise PipelineError(
                    step.name, f"{address} did not answer SSH in {deadline_s:.0f}s ({exc.why})", log
                ) from None
            progress(step.name, f"waiting for {address}")
            time.sleep(interval_s)
            continue
        pending.pop(0)


def run_pipeline(
    root: Path,
    spec: ClusterSpec,
    proxmox: ProxmoxConfig | None,
    *,
    build_template: bool,
    progress: Progress = lambda step, status: None,
    ssh_deadline_s: float = 600.0,
    ssh_interval_s: float = 5.0,
) -> PipelineResult:
    """Run the steps in order; PipelineError names the failing one."""
    completed = _state(root)
    env = _environment(proxmox)
    result = PipelineResult()
    (root / LOGS).mkdir(parents=True, exist_ok=True)
    for step in steps_for(spec, proxmox, build_template=build_template):
        fingerprint = _fingerprint(root, step.inputs)
        # Skip only a finished, unchanged prefix: once a step runs, the later ones run too.
        if not result.ran and completed.get(step.name) == fingerprint:
            progress(step.name, "skipped")
            result.skipped.append(step.name)
            continue
        progress(step.name, "start")
        log = root / LOGS / f"{step.name}.log"
        log.write_text("")
        try:
            if step.name == "wait-ssh":
                _wait_ssh(step, spec, root, env, log, progress, ssh_deadline_s, ssh_interval_s)
            else:
                _run_logged(step, step.argv, root, env, log)
        except PipelineError:
            progress(step.name, "failed")
            for name in (step.name, *step.redo):  # a failed apply needs a fresh plan
                completed.pop(name, None)
            _save(root, completed)
            raise
        completed[step.name] = fingerprint
        _save(root, completed)
        progress(step.name, "done")
        result.ran.append(step.name)
    return result
