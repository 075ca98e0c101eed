"""The real MCP Inspector CLI (from npm) against the hub started by its own CLI, auth off."""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import free_port

# The first run downloads the inspector from the npm registry.
INSPECTOR_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def hub_without_auth() -> Iterator[str]:
    """`anvyl-mcp-hub serve` on loopback with no token, as the inspector sends no auth."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANVYL_MCP_HUB_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anvyl.mcp_hub",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hub did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=5)
    # The hub said plainly that auth is off.
    assert "auth_off" in output


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
