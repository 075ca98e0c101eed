"""`anvyl settings show|set|reset|history`, run as a user runs it, against a real `anvyl serve` with
API keys (the changes are recorded under the key's fingerprint)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from anvyl.orchestrator.llm.testing import ScriptedLLMServer
from tests.helpers import ANVYL, ServerProcess, running_server
from tests.orchestrator.test_cli import anvyl, ok

KEY = "cli-settings-key-42"


@pytest.fixture
def keyed_server(
    model: ScriptedLLMServer, tmp_path: Path, instance: str
) -> Iterator[ServerProcess]:
    env = {"ANVYL_DATA_DIR": str(tmp_path / "data"), "ANVYL_WORKSPACE_BACKEND": "local",
           "ANVYL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'anvyl.db'}",
           "ANVYL_INSTANCE": instance, "ANVYL_API_KEYS": KEY}  # fmt: skip
    with running_server(env, tmp_path / "serve.log", command=(ANVYL,)) as process:
        yield process


def test_settings_show_set_reset_and_history(keyed_server: ServerProcess) -> None:
    key = {"ANVYL_API_KEY": KEY}
    refused = anvyl("settings", "show", server=keyed_server)
    shown = ok(anvyl("settings", "show", server=keyed_server, env=key))
    local = ok(anvyl("settings", "set", "preference", "local", server=keyed_server, env=key))
    archives = json.loads(ok(anvyl("settings", "set", "rag-archives", "/srv/docs, /srv/a.zip",
                                   "--json", server=keyed_server, env=key)))  # fmt: skip
    model = json.loads(ok(anvyl("settings", "set", "default_model", "scripted", "--json",
                                server=keyed_server, env=key)))  # fmt: skip
    memory_off = json.loads(ok(anvyl("settings", "set", "memory_enabled", "off", "--json",
                                     server=keyed_server, env=key)))  # fmt: skip
    unknown_model = anvyl("settings", "set", "default_model", "gpt-9", server=keyed_server, env=key)
    bad_key = anvyl("settings", "set", "colour", "blue", server=keyed_server, env=key)
    bad_bool = anvyl("settings", "set", "memory_enabled", "maybe", server=keyed_server, env=key)
    relative = anvyl("settings", "set", "rag_archives", "docs", server=keyed_server, env=key)
    history = json.loads(ok(anvyl("settings", "history", "--json", server=keyed_server, env=key)))
    table = ok(anvyl("settings", "history", server=keyed_server, env=key))
    reset = json.loads(ok(anvyl("settings", "reset", "--json", server=keyed_server, env=key)))

    assert refused.returncode == 1 and "refused the API key" in refused.stderr
    assert "preference" in shown and "auto" in shown and "last changed: never" in shown
    assert "local" in local
    assert archives["rag_archives"] == ["/srv/docs", "/srv/a.zip"]
    assert model["default_model"] == "scripted" and memory_off["memory_enabled"] is False
    assert unknown_model.returncode == 1 and "422" in unknown_model.stderr
    assert "default_model" in unknown_model.stderr and "known: scripted" in unknown_model.stderr
    assert bad_key.returncode == 2 and "no setting named 'colour'" in bad_key.stderr
    assert bad_bool.returncode == 2 and "memory_enabled" in bad_bool.stderr
    assert relative.returncode == 1 and "rag_archives.0" in relative.stderr
    fingerprint = "sha256:" + hashlib.sha256(KEY.encode()).hexdigest()[:12]
    assert [c["field"] for c in history] == ["memory_enabled", "default_model", "rag_archives",
                                             "preference"]  # fmt: skip
    assert {c["api_key"] for c in history} == {fingerprint} and fingerprint in table
    assert reset["preference"] == "auto" and reset["default_model"] is None
    assert reset["rag_archives"] == [] and reset["memory_enabled"] is True
