"""The server table is the one list of hub servers: settings, routes and README follow it."""

from pathlib import Path

from anvyl.mcp_hub.servers import SERVER_NAMES, SERVERS
from anvyl.mcp_hub.settings import HubSettings

README = Path(__file__).parents[2] / "services" / "mcp-hub" / "README.md"


def test_every_server_s_settings_are_hub_settings() -> None:
    fields = HubSettings.model_fields
    for server in SERVERS:
        assert set(server.settings.model_fields) <= set(fields), server.name
    assert HubSettings(_env_file=None).enabled_servers == list(SERVER_NAMES)


def test_every_server_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for server in SERVERS:
        assert f"| `{server.path}` | {server.description} |" in readme, server.name
        assert f"`{server.name.upper()}_TOOLS`" in readme, server.name
