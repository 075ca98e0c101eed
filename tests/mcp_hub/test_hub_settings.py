"""Settings come from `ANVYL_MCP_HUB_*` variables, lists as `a,b` or JSON."""

import pytest

from anvyl.mcp_hub.app import transport_security
from anvyl.mcp_hub.settings import DEFAULT_COMMAND_ALLOW_LIST, HubSettings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANVYL_MCP_HUB_TOKEN", "env-token")
    monkeypatch.setenv("ANVYL_MCP_HUB_PORT", "9123")
    monkeypatch.setenv("ANVYL_MCP_HUB_READ_ONLY", "true")
    monkeypatch.setenv("ANVYL_MCP_HUB_DOCKER_TOOLS", "list_containers, container_logs")
    monkeypatch.setenv("ANVYL_MCP_HUB_ALLOWED_HOSTS", '["hub.lan", "10.0.0.5:8765"]')
    monkeypatch.setenv("ANVYL_MCP_HUB_COMMAND_ALLOW_LIST", "uptime")
    monkeypatch.setenv("ANVYL_MCP_HUB_PROXMOX_URL", "https://pve.lan:8006")
    monkeypatch.setenv("ANVYL_MCP_HUB_PROXMOX_TOKEN_SECRET", "pve-secret")
    monkeypatch.setenv("ANVYL_MCP_HUB_PROXMOX_VERIFY_TLS", "false")
    monkeypatch.setenv("ANVYL_MCP_HUB_DOCKER_URL", "tcp://127.0.0.1:2375")
    settings = HubSettings(_env_file=None)
    assert settings.auth_enabled
    assert settings.port == 9123
    assert settings.read_only is True
    assert settings.tool_allow_list("docker") == ["list_containers", "container_logs"]
    assert settings.tool_allow_list("infra") is None
    assert settings.allowed_hosts == ["hub.lan", "10.0.0.5:8765"]
    assert settings.command_allow_list == ["uptime"]
    assert settings.proxmox_verify_tls is False
    assert settings.docker_url == "tcp://127.0.0.1:2375"
    # Secrets never show in a repr (and so not in logs of the settings object).
    assert "pve-secret" not in repr(settings)
    assert "env-token" not in repr(settings)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANVYL_MCP_HUB_TOKEN", "ANVYL_MCP_HUB_HOST", "ANVYL_MCP_HUB_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    settings = HubSettings(_env_file=None)
    assert settings.host == "127.0.0.1"
    assert not settings.auth_enabled
    assert settings.read_only is False
    assert settings.proxmox_verify_tls is True
    assert settings.command_allow_list == list(DEFAULT_COMMAND_ALLOW_LIST)


def test_unknown_server_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown servers"):
        HubSettings(_env_file=None, enabled_servers=["infra", "kubernetes"])


def test_allowed_hosts_become_host_and_origin_patterns() -> None:
    security = transport_security(
        HubSettings(_env_file=None, host="10.0.0.5", allowed_hosts=["hub.lan", "[fd00::1]:8765"])
    )
    assert security.enable_dns_rebinding_protection
    for expected in ("127.0.0.1:*", "10.0.0.5", "10.0.0.5:*", "hub.lan:*", "[fd00::1]:8765"):
        assert expected in security.allowed_hosts
    assert "[fd00::1]:8765:*" not in security.allowed_hosts
    assert "http://hub.lan:*" in security.allowed_origins
