"""The real MCP Inspector CLI (from npm) against the hub started by its own CLI, auth off."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import serving_process

from .conftest import free_port

# The first run downloads the inspector from the npm registry.
INSPECTOR_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def hub_without_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`anvyl-mcp-hub serve` on loopback with no token, as the inspector sends no auth."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_MCP_HUB_")}
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("hub") / "hub.log"
    argv = [sys.executable, "-m", "anvyl.mcp_hub", "serve", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip
    with serving_process(argv, f"{base_url}/health", log, env=env, timeout_s=30):
        yield base_url
    # The hub said plainly that auth is off.
    assert "auth_off" in log.read_text()


def inspector(*args: str) -> dict[str, object]:
    npx = shutil.which("npx")
    assert npx, "npx (Node.js) is required for the MCP Inspector test"
    result = subprocess.run(
        [npx, "-y", "@modelcontextprotocol/inspector", "--cli", *args],
        capture_output=True,
        text=True,
        timeout=INSPECTOR_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_inspector_lists_docker_tools(hub_without_auth: str) -> None:
    listed = inspector(
        f"{hub_without_auth}/docker/mcp", "--transport", "http", "--method", "tools/list"
    )
    tools = listed["tools"]
    assert isinstance(tools, list)
    names = {tool["name"] for tool in tools}
    assert {"list_containers", "create_container", "exec_in_container"} <= names
    remove = next(tool for tool in tools if tool["name"] == "remove_container")
    assert remove["annotations"]["destructiveHint"] is True
    assert remove["inputSchema"]["required"] == ["container_id"]


def test_inspector_calls_get_host_info(hub_without_auth: str) -> None:
    called = inspector(
        f"{hub_without_auth}/infra/mcp",
        "--transport",
        "http",
        "--method",
        "tools/call",
        "--tool-name",
        "get_host_info",
    )
    assert called.get("isError") in (None, False)
    structured = called["structuredContent"]
    assert isinstance(structured, dict)
    assert structured["hostname"]
    assert structured["cpu_count_logical"] >= 1
