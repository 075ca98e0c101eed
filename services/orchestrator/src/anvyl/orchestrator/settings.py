"""Effective settings: defaults, then an optional YAML config file (ANVYL_CONFIG), then ANVYL_* variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, computed_field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from anvyl.orchestrator.config_file import CONFIG_ENV, ConfigFile, config_file_from_env
from anvyl.orchestrator.workspaces.config import (
    AutoWorkspaceConfig,
    WorkspaceConfig,
    flat_keys,
    fold_flat_keys,
)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("anvyl", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANVYL_", extra="ignore", validate_default=True)

    # Where state lives.
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in data_dir"
    )

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)

    # Workspaces: the backend and its own options (workspaces/config.py), from the config file's
    # `workspace:` section and the documented flat variables (ANVYL_WORKSPACE_BACKEND, ...).
    workspace: WorkspaceConfig = Field(default_factory=AutoWorkspaceConfig)
    instance: str = Field(
        default="default",
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="label that separates the containers of two orchestrators on one daemon",
    )
    worker_start_timeout_s: float = Field(default=30.0, gt=0)
    workspace_idle_timeout_s: float = Field(
        default=900.0, gt=0, description="stop an idle workspace's worker after this (files kept)"
    )
    workspace_sweep_interval_s: float = Field(
        default=60.0, gt=0, description="how often idle and unused workspaces are looked for"
    )
    workspace_retention_s: float = Field(
        default=7 * 86400.0, gt=0, description="remove an unused workspace and its files after this"
    )

    # API.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="bearer keys (comma-separated); none = auth off, loopback only",
    )

    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts the agents' model keys at rest; default: one "
        "generated into data_dir/secret.key (mode 0600). Replicas sharing a database share it",
    )

    # Tasks and the queue.
    max_query_chars: int = Field(default=20_000, gt=0)
    tool_timeout_s: float = Field(default=120.0, gt=0)
    max_concurrent_tasks: int = Field(
        default=4, ge=0, le=256,
        description="task slots (tasks run at once) in this process; 0: an API-only process (PostgreSQL only)",
    )  # fmt: skip
    default_task_timeout_s: float = Field(default=1800.0, gt=0)
    max_task_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    task_lease_s: float = Field(
        default=15.0, ge=1, description="a task slot renews its task's lease"
    )
    task_max_attempts: int = Field(
        default=3, ge=1, description="runs before an orphaned task fails"
    )
    queue_poll_s: float = Field(
        default=0.5, gt=0, description="how often idle task slots look for work"
    )

    # The agent loop.
    agent_max_steps: int = Field(default=30, ge=1, le=500, description="model turns per task")
    agent_max_tokens: int = Field(default=200_000, ge=1000, description="token budget per task")
    agent_temperature: float = Field(
        default=0.0, ge=0, le=2, description="sampling temperature sent to every model"
    )
    agent_max_output_tokens: int = Field(
        default=4096, ge=1, description="output token budget of one model call"
    )
    tool_output_chars: int = Field(
        default=16_000, ge=500, description="tool output fed back, at most"
    )

    # Known hosts (other orchestrators this one asks).
    host_id: str | None = Field(
        default=None, pattern=r"^[a-z0-9-]{1,63}$",
        description="this host's id for the others; default: one generated into data_dir/host.id",
    )  # fmt: skip
    host_name: str | None = Field(
        default=None, max_length=100, description="default: the machine's name"
    )
    host_query_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="wait for a remote host's answer at most this long"
    )
    host_max_hops: int = Field(
        default=3, ge=1, le=20, description="a query passes at most this many hosts (loop guard)"
    )
    hosts_check_interval_s: float = Field(
        default=60.0, gt=0, description="how often every known host is checked (online, latency)"
    )
    # The cloud provider whose key LLM_API_KEY is (environment.py copies it to that provider's own
    # variable, OPENAI_API_KEY say, at start-up).
    llm_provider: Literal["openai", "anthropic", "xai", "groq"] = "openai"
    # Memory and knowledge (memory/).
    memory_backend: Literal["database", "cognee", "off"] = Field(
        default="database", description="where memories and archive snippets are kept"
    )
    memory_recall: int = Field(
        default=5, ge=0, le=50, description="memories recalled into a prompt"
    )
    memory_archives: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="archives to index (comma-separated): directories, .zip, "
        ".tar.gz, git repositories (paths or URLs)",
    )  # fmt: skip
    memory_reindex_interval_s: float = Field(
        default=300.0, gt=0, description="how often the archives are checked for changed files "
        "(only new or changed files are read again)",
    )  # fmt: skip
    embeddings_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL serving /v1/embeddings (gpt-oss)"
    )
    embeddings_model: str = "wordllama-l2-supercat"
    embeddings_api_key: SecretStr | None = None
    memory_llm_url: str | None = Field(
        default=None, description="cognee backend: the OpenAI-compatible chat model it builds with"
    )
    memory_llm_model: str = "gpt-oss-20b"
    memory_llm_api_key: SecretStr | None = None

    # Logs.
    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    # The configuration file (ANVYL_CONFIG) as read once for these settings; its sections (models,
    # routing, mcp_servers, workspace) are validated by their owners.
    config_file: ConfigFile | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _fold_workspace_keys(cls, data: Any) -> Any:
        return fold_flat_keys(dict(data)) if isinstance(data, dict) else data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def workspace_backend(self) -> str:
        """The backend chosen (`auto` until the workspaces start)."""
        return self.workspace.type

    @field_validator("memory_archives", mode="before")
    @classmethod
    def _split_archives(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be one of debug, info, warning, error")
        return value.lower()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings, env_settings, _WorkspaceVariables(settings_cls)
        ]  # fmt: skip
        # The configuration file's top-level settings, below the environment.
        file = config_file_from_env(os.environ)
        if file is not None:
            file.check_keys(set(settings_cls.model_fields) - {"config_file"} | set(flat_keys()))
            values = file.settings_values() | {"config_file": file}
            if file.section("workspace") is not None:
                values["workspace"] = file.section("workspace")
            sources.append(InitSettingsSource(settings_cls, init_kwargs=values))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir / 'anvyl.db'}"

    def masked(self) -> dict[str, Any]:
        """The settings as `anvyl config show` prints them: every secret masked."""
        shown = self.model_dump(mode="json")
        shown["database_url"] = mask_url(self.effective_database_url)
        shown["config_file"] = os.environ.get(CONFIG_ENV)
        for name, value in self:
            if isinstance(value, SecretStr) and name != "database_url":
                shown[name] = "********"
        shown["api_keys"] = ["********"] * len(self.api_keys)
        return shown


class _WorkspaceVariables(PydanticBaseSettingsSource):
    """The documented flat variables of the workspace backends (ANVYL_GCP_PROJECT, ...), as flat
    keys that the `workspace` field's folding turns into its section."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the variables itself

    def __call__(self) -> dict[str, Any]:
        environment = {name.lower(): value for name, value in os.environ.items()}
        return {
            key: environment[f"anvyl_{key}"] for key in flat_keys() if f"anvyl_{key}" in environment
        }


def mask_url(url: str) -> str:
    """Hide the password of a URL such as postgresql+asyncpg://user:secret@host/db."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:********@{location}" if ":" in credentials else url


def is_loopback(host: str) -> bool:
    return host in {"localhost", "::1"} or host.startswith("127.")
