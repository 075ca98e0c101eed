"""Every fact about a model vendor in one table: where it is, how to authenticate, what it costs.

A vendor (``provider:`` in the model config) says *where* and *how to authenticate*; its
``api_shape`` names the module in ``llm/models/`` that speaks its wire protocol. Adding a vendor that
speaks an existing API is one row here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

ApiShape = Literal["openai_chat", "anthropic_messages", "local_runner"]


@dataclass(frozen=True)
class Vendor:
    name: str  # the ``provider:`` value in the model config
    api_shape: ApiShape
    local: bool  # self-hosted or in-process: free, no key
    base_url: str | None = None  # default base URL; None: the config must give one
    key_env: str | None = None  # API key variable (also a zero-config shortcut)
    url_env: str | None = None  # zero-config shortcut: this variable holds the base URL
    url_path: str = ""  # appended to the shortcut's URL when missing (Ollama's API is under /v1)
    model_env: str | None = None  # overrides the shortcut's default model
    default_model: str | None = None  # the shortcut's model
    runner: str | None = None  # local_runner: the registered runner (anvyl.gpt_oss.runners)
    # (input, output) USD per million tokens, matched by model-id prefix, longest first.
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def host(self) -> str | None:
        return urlsplit(self.base_url).hostname if self.base_url else None


# The zero-config shortcuts join the chain in this order: self-hosted first, then cloud.
VENDORS: dict[str, Vendor] = {
    vendor.name: vendor
    for vendor in [
        Vendor(
            "gpt-oss", "openai_chat", local=True,  # vLLM or `anvyl-gpt-oss serve`
            url_env="ANVYL_GPT_OSS_URL", model_env="ANVYL_GPT_OSS_MODEL",
            default_model="openai/gpt-oss-20b",
        ),
        Vendor(
            "lmstudio", "openai_chat", local=True, base_url="http://localhost:1234/v1",
            url_env="ANVYL_LMSTUDIO_URL", model_env="ANVYL_LMSTUDIO_MODEL", default_model="default",
        ),
        Vendor(
            "ollama", "openai_chat", local=True, base_url="http://localhost:11434/v1",
            url_env="OLLAMA_URL", url_path="/v1", model_env="OLLAMA_MODEL", default_model="llama3",
        ),
        Vendor(
            "openai", "openai_chat", local=False, base_url="https://api.openai.com/v1",
            key_env="OPENAI_API_KEY", model_env="ANVYL_OPENAI_MODEL", default_model="gpt-4o-mini",
            prices={
                "gpt-4o-mini": (0.15, 0.60),
                "gpt-4o": (2.50, 10.00),
                "gpt-4.1-mini": (0.40, 1.60),
                "gpt-4.1": (2.00, 8.00),
            },
        ),
        Vendor(
            "anthropic", "anthropic_messages", local=False, base_url="https://api.anthropic.com",
            key_env="ANTHROPIC_API_KEY", model_env="ANVYL_ANTHROPIC_MODEL",
            default_model="claude-3-haiku-20240307",
            prices={
                "claude-3-haiku": (0.25, 1.25),
                "claude-3-5-haiku": (0.80, 4.00),
                "claude-3-5-sonnet": (3.00, 15.00),
                "claude-sonnet-4": (3.00, 15.00),
            },
        ),
        Vendor(
            "xai", "openai_chat", local=False, base_url="https://api.x.ai/v1",
            key_env="XAI_API_KEY", model_env="ANVYL_XAI_MODEL", default_model="grok-3-mini",
            prices={"grok-3-mini": (0.30, 0.50), "grok-3": (3.00, 15.00)},
        ),
        Vendor(
            "groq", "openai_chat", local=False, base_url="https://api.groq.com/openai/v1",
            key_env="GROQ_API_KEY", model_env="ANVYL_GROQ_MODEL",
            default_model="llama-3.1-8b-instant",
            prices={
                "llama-3.1-8b-instant": (0.05, 0.08),
                "llama-3.3-70b-versatile": (0.59, 0.79),
                "openai/gpt-oss-20b": (0.10, 0.50),  # hosted gpt-oss; self-hosted is free
                "openai/gpt-oss-120b": (0.15, 0.75),
            },
        ),
        Vendor("mlx", "local_runner", local=True, runner="mlx"),  # in-process mlx-lm
        Vendor("local", "local_runner", local=True),  # in-process; the config names the runner
    ]
}  # fmt: skip


def shortcut_endpoints(environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """Zero-config endpoints, one per vendor whose URL or key variable is set, in table order."""
    found: list[dict[str, Any]] = []
    for vendor in VENDORS.values():
        endpoint: dict[str, Any] = {"name": vendor.name, "provider": vendor.name}
        if vendor.url_env and (url := environ.get(vendor.url_env)):
            if vendor.url_path and not url.rstrip("/").endswith(vendor.url_path):
                url = url.rstrip("/") + vendor.url_path
            elif vendor.url_path:
                url = url.rstrip("/")
            endpoint["base_url"] = url
        elif not (vendor.key_env and environ.get(vendor.key_env)):
            continue
        model = environ.get(vendor.model_env) if vendor.model_env else None
        found.append(endpoint | {"model": model or vendor.default_model})
    return found


def cloud_vendor_at(base_url: str | None) -> Vendor | None:
    """The cloud vendor whose API host ``base_url`` points at (whatever ``provider:`` says)."""
    host = urlsplit(base_url).hostname if base_url else None
    return next((v for v in VENDORS.values() if not v.local and v.host == host), None)


def price_of(vendor: Vendor, model_id: str) -> tuple[float, float] | None:
    match = max((p for p in vendor.prices if model_id.startswith(p)), key=len, default=None)
    return vendor.prices[match] if match is not None else None
