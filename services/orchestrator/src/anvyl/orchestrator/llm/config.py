"""Model endpoint configuration: the configuration file's ``models`` and ``routing`` sections plus
environment shortcuts. Errors name the field and the file line (config_file.py keeps the lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from anvyl.orchestrator.config_file import ConfigFile, ConfigFileError, Location, read_config_file
from anvyl.orchestrator.llm.errors import ModelConfigError

Provider = Literal["openai", "anthropic", "xai", "groq", "ollama", "lmstudio", "local"]

VENDOR_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "xai": "https://api.x.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "ollama": "http://localhost:11434/v1",
    "lmstudio": "http://localhost:1234/v1",
}
VENDOR_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "xai": "XAI_API_KEY",
    "groq": "GROQ_API_KEY",
}
CLOUD_HOSTS = ("api.openai.com", "api.anthropic.com", "api.x.ai", "api.groq.com")


class ModelEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    provider: Provider
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    runner: str | None = None  # local provider: registered runner name (mlx, vllm)
    runner_options: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=120.0, gt=0)  # total seconds for one call
    connect_timeout: float = Field(default=5.0, gt=0)
    first_token_timeout: float = Field(default=30.0, gt=0)
    chunk_timeout: float = Field(default=30.0, gt=0)  # between two streamed chunks
    retries: int = Field(default=1, ge=0, le=10)  # extra tries on this endpoint before the next
    backoff_base: float = Field(default=0.01, ge=0)  # first retry waits 0-10 ms (full jitter)
    backoff_max: float = Field(default=2.0, ge=0)
    max_retry_after: float = Field(default=10.0, ge=0)  # a longer Retry-After moves on instead
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None
    harmony: bool = True  # normalize gpt-oss harmony markers found in content

    @model_validator(mode="after")
    def _fill_vendor_defaults(self) -> ModelEndpoint:
        if self.provider == "local":
            if not self.runner:
                raise ValueError("a local provider needs 'runner' (for example mlx)")
            return self
        if self.base_url is None:
            if self.provider not in VENDOR_BASE_URLS:
                raise ValueError(f"base_url is required for provider {self.provider!r}")
            self.base_url = VENDOR_BASE_URLS[self.provider]
        if self.api_key_env is None and self.provider in VENDOR_KEY_ENV and self.is_cloud:
            self.api_key_env = VENDOR_KEY_ENV[self.provider]
        return self

    @property
    def is_cloud(self) -> bool:
        return self.base_url is not None and any(host in self.base_url for host in CLOUD_HOSTS)

    @property
    def api_shape(self) -> Literal["openai", "anthropic", "local"]:
        if self.provider == "local":
            return "local"
        return "anthropic" if self.provider == "anthropic" else "openai"


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary: str | None = None
    fallbacks: list[str] = Field(default_factory=list)
    circuit_failure_threshold: int = Field(default=3, ge=1)
    circuit_cooldown_s: float = Field(default=30.0, ge=0)


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelEndpoint] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    source: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check_routing(self) -> ModelConfig:
        names = [m.name for m in self.models]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate model names: {', '.join(sorted(duplicates))}")
        for name in [self.routing.primary, *self.routing.fallbacks]:
            if name is not None and name not in names:
                raise ValueError(f"routing names unknown model {name!r}; known: {names}")
        return self

    def chain(self) -> list[ModelEndpoint]:
        """Endpoints in the order the router tries them."""
        by_name = {m.name: m for m in self.models}
        if self.routing.primary is None and not self.routing.fallbacks:
            return list(self.models)
        order = [n for n in [self.routing.primary, *self.routing.fallbacks] if n is not None]
        return [by_name[n] for n in dict.fromkeys(order)]

    def endpoint(self, name: str) -> ModelEndpoint:
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"no model named {name!r}")


def environment_endpoints(environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """Zero-config endpoints, self-hosted first, then cloud vendors whose key is set."""
    found: list[dict[str, Any]] = []
    if url := environ.get("ANVYL_GPT_OSS_URL"):
        model = environ.get("ANVYL_GPT_OSS_MODEL", "openai/gpt-oss-20b")
        found.append({"name": "gpt-oss", "provider": "openai", "base_url": url, "model": model})
    if url := environ.get("ANVYL_LMSTUDIO_URL"):
        model = environ.get("ANVYL_LMSTUDIO_MODEL", "default")
        found.append({"name": "lmstudio", "provider": "lmstudio", "base_url": url, "model": model})
    if url := environ.get("OLLAMA_URL"):
        # Ollama's native URL has no /v1; its OpenAI-compatible API lives under it.
        base = url.rstrip("/") if url.rstrip("/").endswith("/v1") else url.rstrip("/") + "/v1"
        model = environ.get("OLLAMA_MODEL", "llama3")
        found.append({"name": "ollama", "provider": "ollama", "base_url": base, "model": model})
    cloud = [
        ("openai", "OPENAI_API_KEY", "ANVYL_OPENAI_MODEL", "gpt-4o-mini"),
        ("anthropic", "ANTHROPIC_API_KEY", "ANVYL_ANTHROPIC_MODEL", "claude-3-haiku-20240307"),
        ("xai", "XAI_API_KEY", "ANVYL_XAI_MODEL", "grok-3-mini"),
        ("groq", "GROQ_API_KEY", "ANVYL_GROQ_MODEL", "llama-3.1-8b-instant"),
    ]
    for provider, key_env, model_env, default_model in cloud:
        if environ.get(key_env):
            model = environ.get(model_env, default_model)
            found.append({"name": provider, "provider": provider, "model": model})
    return found


def load_model_config(source: ConfigFile | Path | None, environ: Mapping[str, str]) -> ModelConfig:
    """The ``models`` and ``routing`` sections of the configuration file (if any) plus the
    environment shortcuts.

    Shortcut endpoints are added under their own names when the file does not define that name; they
    join the chain only when the file has no ``routing`` section (an explicit chain is kept as is).
    """
    try:
        file = read_config_file(source) if isinstance(source, Path) else source
    except ConfigFileError as exc:
        raise ModelConfigError(str(exc)) from None
    raw = {} if file is None else {
        key: file.section(key) for key in ("models", "routing") if file.section(key) is not None
    }  # fmt: skip
    lines = {} if file is None else file.lines
    where = None if file is None else str(file.path)
    if raw.get("models") is not None and not isinstance(raw["models"], list):
        raise ModelConfigError(f"{where}:{lines.get(('models',), 1)}: 'models' must be a list")
    file_models = list(raw.get("models") or [])
    defined = {m.get("name") for m in file_models if isinstance(m, dict)}
    extra = [m for m in environment_endpoints(environ) if m["name"] not in defined]
    data = {**raw, "models": file_models + extra}
    try:
        config = ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ModelConfigError(_describe(exc, lines, where)) from None
    config.source = where
    for endpoint in config.models:
        if endpoint.api_key is None and endpoint.api_key_env:
            value = environ.get(endpoint.api_key_env)
            if value:
                endpoint.api_key = SecretStr(value)
    return config


def _describe(exc: ValidationError, lines: Mapping[Location, int], source: str | None) -> str:
    messages = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        field = ".".join(str(part) for part in loc) or "(top level)"
        line = None
        if not loc and "routing" in error["msg"]:
            loc = ("routing",)  # cross-field check on the routing section
        for end in range(len(loc), -1, -1):
            if loc[:end] in lines:
                line = lines[loc[:end]]
                break
        where = f"{source}:{line}" if source and line else (source or "environment")
        messages.append(f"{where}: {field}: {error['msg']}")
    return "invalid model config:\n  " + "\n  ".join(messages)
