"""Model endpoint configuration: the configuration file's ``models`` and ``routing`` sections plus
environment shortcuts. Vendor defaults (base URL, key variable, shortcuts) come from ``vendors.py``.
Errors name the field and the file line (config_file.py keeps the lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from anvyl.orchestrator.config_file import ConfigFile, ConfigFileError, Location, read_config_file
from anvyl.orchestrator.llm.errors import ModelConfigError
from anvyl.orchestrator.llm.types import ModelRequest
from anvyl.orchestrator.llm.vendors import (
    VENDORS,
    ApiShape,
    Vendor,
    cloud_vendor_at,
    shortcut_endpoints,
)


def _known_vendor(name: str) -> str:
    if name not in VENDORS:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(VENDORS)}")
    return name


class ModelEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    provider: Annotated[str, AfterValidator(_known_vendor)]  # a row of vendors.VENDORS
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    runner: str | None = None  # local_runner vendors: registered runner name (mlx, vllm)
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
    # For the user's local/online preference; by default local for a self-hosted vendor or a
    # base_url that is not a cloud vendor's API (a proxy in front of a cloud API says `online`).
    locality: Literal["local", "online"] | None = None
    temperature: float | None = Field(default=None, ge=0)  # overrides ANVYL_AGENT_TEMPERATURE
    max_output_tokens: int | None = Field(default=None, ge=1)  # overrides ANVYL_AGENT_TEMPERATURE

    @model_validator(mode="after")
    def _fill_vendor_defaults(self) -> ModelEndpoint:
        vendor = self.vendor
        if vendor.api_shape == "local_runner":
            self.runner = self.runner or vendor.runner
            if not self.runner:
                raise ValueError("a local provider needs 'runner' (for example mlx)")
            return self
        if self.base_url is None:
            if vendor.base_url is None:
                raise ValueError(f"base_url is required for provider {self.provider!r}")
            self.base_url = vendor.base_url
        if self.api_key_env is None and vendor.key_env and self.is_cloud:
            self.api_key_env = vendor.key_env
        return self

    @property
    def vendor(self) -> Vendor:
        return VENDORS[self.provider]

    @property
    def is_cloud(self) -> bool:
        """Whether ``base_url`` is a cloud vendor's API (not a local server speaking its API)."""
        return cloud_vendor_at(self.base_url) is not None

    @property
    def is_local(self) -> bool:
        if self.locality is not None:
            return self.locality == "local"
        return self.vendor.local or not self.is_cloud

    @property
    def api_shape(self) -> ApiShape:
        return self.vendor.api_shape

    def tuned(self, request: ModelRequest) -> ModelRequest:
        """``request`` with this endpoint's temperature and output budget, where it sets them."""
        update: dict[str, Any] = {}
        if self.temperature is not None:
            update["temperature"] = self.temperature
        if self.max_output_tokens is not None:
            update["max_tokens"] = self.max_output_tokens
        return request.model_copy(update=update) if update else request


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
    extra = [m for m in shortcut_endpoints(environ) if m["name"] not in defined]
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
