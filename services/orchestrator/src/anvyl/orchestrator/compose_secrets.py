"""The compose stack's internal secrets, so that `cp .env.example .env && docker-compose up -d` needs
no editing: the one-shot `secrets-init` service runs `python3 -m anvyl.orchestrator.compose_secrets DIR`
before the others start, with DIR a volume only the stack's own services mount.

Each secret is the value `.env` gives, else the one generated on an earlier start (kept, since
PostgreSQL keeps the password its data was created with), else a new random one. It writes:

- `postgres-password`: for PostgreSQL's POSTGRES_PASSWORD_FILE (readable by the postgres user);
- `anvyl.env`: shell-quoted NAME=value lines (mode 0600) that the image's entrypoint exports for the
  orchestrator and the hub: ANVYL_MCP_HUB_TOKEN and the orchestrator's ANVYL_DATABASE_URL.

Values are never printed; each line of output says where a secret came from.
"""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from pathlib import Path
from urllib.parse import quote

DATABASE = "postgresql+asyncpg://anvyl:{password}@postgres:5432/anvyl"
SECRETS = {  # file name -> the variable of .env that sets it
    "postgres-password": "POSTGRES_PASSWORD",
    "mcp-hub-token": "ANVYL_MCP_HUB_TOKEN",
}


def write_private(path: Path, text: str, mode: int) -> None:
    """Whole or not at all: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(partial, mode)  # whatever the umask
    partial.replace(path)


def settle(directory: Path, environ: dict[str, str]) -> dict[str, str]:
    """Write the secrets into `directory`; returns where each came from (name -> origin)."""
    origins: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, variable in SECRETS.items():
        path = directory / name
        given = environ.get(variable, "")
        if given:
            values[name], origins[name] = given, f"from {variable} in .env"
        elif path.is_file() and path.read_text():
            values[name], origins[name] = path.read_text(), "kept from an earlier start"
        else:
            values[name], origins[name] = secrets.token_hex(32), "generated"
        # PostgreSQL's entrypoint reads its file as the postgres user: readable; the rest private.
        write_private(path, values[name], 0o644 if name == "postgres-password" else 0o600)
    exported = {
        "ANVYL_MCP_HUB_TOKEN": values["mcp-hub-token"],
        "ANVYL_DATABASE_URL": DATABASE.format(password=quote(values["postgres-password"], safe="")),
    }
    lines = "".join(f"{name}={shlex.quote(value)}\n" for name, value in exported.items())
    write_private(directory / "anvyl.env", lines, 0o600)
    return origins


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python3 -m anvyl.orchestrator.compose_secrets DIRECTORY (an existing one)",
              file=sys.stderr)  # fmt: skip
        return 2
    for name, origin in settle(Path(args[0]), dict(os.environ)).items():
        print(f"secrets: {name}: {origin}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
