"""The compose stack's own secrets (`secrets-init`): what `.env` gives wins, else the one of an
earlier start is kept, else one is generated; the files are whole, private where they can be, and
the entrypoint's shell reads back exactly the values written."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from anvyl.orchestrator.compose_secrets import settle


def exported(directory: Path) -> dict[str, str]:
    """What dockerfiles/anvyl-entrypoint.sh exports from anvyl.env, read by a real sh."""
    script = ('set -a; . "$1"; set +a; printf "%s\\0%s" "$ANVYL_MCP_HUB_TOKEN" '
              '"$ANVYL_DATABASE_URL"')  # fmt: skip
    done = subprocess.run(["sh", "-c", script, "sh", str(directory / "anvyl.env")],
                          capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    token, url = done.stdout.split("\0")
    return {"ANVYL_MCP_HUB_TOKEN": token, "ANVYL_DATABASE_URL": url}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_empty_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    origins = settle(tmp_path, {"POSTGRES_PASSWORD": "", "ANVYL_MCP_HUB_TOKEN": ""})
    assert origins == {"postgres-password": "generated", "mcp-hub-token": "generated"}
    password = (tmp_path / "postgres-password").read_text()
    token = (tmp_path / "mcp-hub-token").read_text()
    assert len(password) == len(token) == 64 and password != token
    assert exported(tmp_path) == {
        "ANVYL_MCP_HUB_TOKEN": token,
        "ANVYL_DATABASE_URL": f"postgresql+asyncpg://anvyl:{password}@postgres:5432/anvyl",
    }
    # The postgres user reads its file; the rest is the image user's alone.
    assert mode(tmp_path / "postgres-password") == 0o644
    assert mode(tmp_path / "mcp-hub-token") == mode(tmp_path / "anvyl.env") == 0o600
    assert not list(tmp_path.glob(".*partial"))

    again = settle(tmp_path, {})
    assert again == {"postgres-password": "kept from an earlier start",
                     "mcp-hub-token": "kept from an earlier start"}  # fmt: skip
    assert (tmp_path / "postgres-password").read_text() == password
    assert exported(tmp_path)["ANVYL_MCP_HUB_TOKEN"] == token


def test_values_from_env_win_and_survive_quoting(tmp_path: Path) -> None:
    settle(tmp_path, {})
    awkward = "p@ss w'rd/$HOME;`id`%:"
    origins = settle(tmp_path, {"POSTGRES_PASSWORD": awkward, "ANVYL_MCP_HUB_TOKEN": "tok'en $x"})
    assert origins["postgres-password"] == "from POSTGRES_PASSWORD in .env"
    assert (tmp_path / "postgres-password").read_text() == awkward
    values = exported(tmp_path)
    assert values["ANVYL_MCP_HUB_TOKEN"] == "tok'en $x"
    url = urlsplit(values["ANVYL_DATABASE_URL"])
    assert url.hostname == "postgres" and url.username == "anvyl"
    assert unquote(url.password or "") == awkward


def test_the_module_prints_origins_never_values(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "anvyl.orchestrator.compose_secrets", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={"POSTGRES_PASSWORD": "s3cret-value"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "postgres-password: from POSTGRES_PASSWORD in .env" in done.stdout
    assert "mcp-hub-token: generated" in done.stdout
    assert "s3cret-value" not in done.stdout + done.stderr
    assert (tmp_path / "mcp-hub-token").read_text() not in done.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "anvyl.orchestrator.compose_secrets", str(tmp_path / "absent")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "usage:" in missing.stderr
