"""This host's own id and name: what /agent/info tells others, and what the loop guard records."""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

ID_FILE = "host.id"


def host_id(configured: str | None, data_dir: Path) -> str:
    """ANVYL_HOST_ID, else an id generated once into the data directory (kept across restarts)."""
    if configured:
        return configured
    path = data_dir / ID_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting at once agree on the first one's id.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(f"anvyl-{secrets.token_hex(6)}\n")
    return path.read_text().strip()


def host_name(configured: str | None) -> str:
    if configured:
        return configured
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:100] or "anvyl"
