"""Validate a generated project before it is written: HCL parses, Ansible accepts it.

The checks run on a scratch copy, so nothing reaches the real output directory unless it passed.
Tools that are not installed (terraform, ansible) are reported as skipped, never as passed.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import hcl2

TOOL_TIMEOUT_S = 120


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    skipped: bool = False
    detail: str = ""


class ValidationFailed(Exception):
    def __init__(self, checks: list[Check]) -> None:
        self.checks = checks
        failed = [c for c in checks if not c.ok and not c.skipped]
        super().__init__(
            "generated files failed validation: "
            + "; ".join(f"{c.name}: {c.detail.strip()[-500:]}" for c in failed)
        )


def _tool(name: str) -> str | None:
    """The tool installed with this package (beside this Python: ansible-core is a dependency),
    else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _run(argv: list[str], cwd: Path) -> tuple[bool, str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible-tmp"),
           "ANSIBLE_HOME": str(cwd / ".ansible-home")}  # fmt: skip
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired:
        return False, f"{argv[0]} did not finish in {TOOL_TIMEOUT_S}s"
    return done.returncode == 0, done.stdout + done.stderr


def check_hcl(files: dict[str, str]) -> list[Check]:
    checks = []
    for path, text in files.items():
        if path.endswith((".tf", ".tfvars", ".hcl")):
            try:
                hcl2.load(io.StringIO(text))
            except Exception as exc:  # the parser raises lark errors of several kinds
                checks.append(Check(f"hcl2 {path}", False, detail=str(exc)))
            else:
                checks.append(Check(f"hcl2 {path}", True))
    return checks


def check_tools(root: Path, *, concurrent: bool = True) -> list[Check]:
    """terraform fmt, ansible-inventory and ansible-playbook --syntax-check on a written project,
    run at once (each is mostly interpreter start-up)."""
    jobs: dict[str, tuple[list[str], Path]] = {}
    skipped: list[Check] = []
    terraform = shutil.which("terraform")
    if terraform and (root / "terraform").is_dir():
        jobs["terraform fmt -check"] = ([terraform, "fmt", "-check", "-diff", "terraform"], root)
    else:
        skipped.append(Check("terraform fmt -check", True, skipped=True, detail="no terraform"))
    ansible_dir = root / "ansible"
    inventory_tool = _tool("ansible-inventory")
    playbook_tool = _tool("ansible-playbook")
    playbooks = [name for name in ("site.yml", "addons.yml") if (ansible_dir / name).exists()]
    if inventory_tool and playbook_tool:
        jobs["ansible-inventory --list"] = (
            [inventory_tool, "-i", "inventory.ini", "--list"],
            ansible_dir,
        )
        # One run checks every playbook: ansible-playbook takes several.
        jobs["ansible-playbook --syntax-check " + " ".join(playbooks)] = (
            [playbook_tool, "-i", "inventory.ini", "--syntax-check", *playbooks],
            ansible_dir,
        )
    else:
        skipped.append(Check("ansible checks", True, skipped=True, detail="no ansible"))
    with ThreadPoolExecutor(max_workers=max(1, len(jobs)) if concurrent else 1) as pool:
        futures = {name: pool.submit(_run, argv, cwd) for name, (argv, cwd) in jobs.items()}
        results = [(name, future.result()) for name, future in futures.items()]
    return [Check(name, ok, detail="" if ok else out) for name, (ok, out) in results] + skipped


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def validate_project(files: dict[str, str], *, tools: bool = True) -> list[Check]:
    """Every check on the files (in a scratch directory); ValidationFailed if one fails."""
    checks = check_hcl(files)
    if tools:
        with tempfile.TemporaryDirectory(prefix="anvyl-cluster-check-") as scratch:
            write_tree(Path(scratch), files)
            checks += check_tools(Path(scratch))
    if any(not c.ok and not c.skipped for c in checks):
        raise ValidationFailed(checks)
    return checks
