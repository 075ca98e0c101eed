"""Write a generated project without clobbering what the user changed.

``.anvyl/generated.json`` records the hash of each file as last generated. A file whose content no
longer matches that hash (or that was never generated here) is the user's: it is kept, and a diff
of what would change is shown, unless ``force``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

STATE_DIR = ".anvyl"
RECORD = "generated.json"


@dataclass(frozen=True)
class FileChange:
    path: str
    action: str  # create, update, unchanged, kept (user-edited, not overwritten), overwrite
    diff: str = ""


@dataclass
class WriteResult:
    changes: list[FileChange] = field(default_factory=list)

    @property
    def kept(self) -> list[FileChange]:
        return [c for c in self.changes if c.action == "kept"]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / STATE_DIR / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _diff(path: str, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"{path} (yours)",
            f"{path} (generated)",
        )
    )


def plan_writes(root: Path, files: dict[str, str], *, force: bool = False) -> WriteResult:
    """What writing ``files`` under ``root`` would do, file by file; touches nothing."""
    record = _record(root)
    result = WriteResult()
    for relative, text in files.items():
        path = root / relative
        if not path.exists():
            result.changes.append(FileChange(relative, "create"))
            continue
        current = path.read_text(errors="replace")
        if current == text:
            result.changes.append(FileChange(relative, "unchanged"))
        elif record.get(relative) == _digest(current):
            result.changes.append(FileChange(relative, "update", _diff(relative, current, text)))
        else:
            action = "overwrite" if force else "kept"
            result.changes.append(FileChange(relative, action, _diff(relative, current, text)))
    return result


def write_project(root: Path, files: dict[str, str], *, force: bool = False) -> WriteResult:
    """Write the files ``plan_writes`` allows and record their hashes."""
    result = plan_writes(root, files, force=force)
    record = _record(root)
    for change in result.changes:
        if change.action in ("create", "update", "overwrite"):
            path = root / change.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[change.path])
        if change.action != "kept":
            record[change.path] = _digest(files[change.path])
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    (state / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return result
