"""An agent's model chain: where each of its providers is (the vendor table's defaults filled in),
and the `ModelEndpoint`s its router tries in order (its provider, then its backups).

Keys are decrypted here, in the orchestrator, into the endpoints' SecretStr only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from anvyl.orchestrator.agents.models import Where
from anvyl.orchestrator.agents.secrets import SecretBox
from anvyl.orchestrator.llm import ModelEndpoint
from anvyl.orchestrator.llm.vendors import VENDORS


class InvalidAgent(ValueError):
    """A field of an agent is wrong; the message names it and says what to fix."""


@dataclass(frozen=True)
class Link:
    """One provider of an agent's chain, as stored (the key encrypted)."""

    provider: str
    model: str
    base_url: str | None
    api_key_encrypted: str | None

    def stored(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url,
                "api_key_encrypted": self.api_key_encrypted}  # fmt: skip


def resolve(where: Where, box: SecretBox, field: str, keep_key: str | None = None) -> Link:
    """The stored form of a provider: its model and base URL from the vendor's defaults, the key
    encrypted (`keep_key`: the encrypted key to keep when none is sent)."""
    vendor = VENDORS[where.provider]
    model = where.model or vendor.default_model
    if model is None:
        raise InvalidAgent(f"{field}model: provider {where.provider!r} has no default model; "
                           "give model")  # fmt: skip
    base_url = _base_url(where, field)
    key = box.encrypt(where.api_key.get_secret_value()) if where.api_key else keep_key
    return Link(where.provider, model, base_url, key)


def _base_url(where: Where, field: str) -> str | None:
    vendor = VENDORS[where.provider]
    if vendor.api_shape == "local_runner":
        if where.base_url or where.provider_host or where.provider_port:
            raise InvalidAgent(f"{field}provider: {where.provider!r} runs in the orchestrator's "
                               "process: leave base_url, provider_host and provider_port out")  # fmt: skip
        return None
    if where.base_url is not None:
        if where.provider_host or where.provider_port:
            raise InvalidAgent(f"{field}base_url: give base_url or provider_host/provider_port, "
                               "not both")  # fmt: skip
        return where.base_url.rstrip("/")
    if where.provider_host is None and where.provider_port is None:
        if vendor.base_url is None:
            raise InvalidAgent(f"{field}provider_host: provider {where.provider!r} has no default "
                               "address; give provider_host and provider_port, or base_url")  # fmt: skip
        return vendor.base_url
    # A host or port given: the vendor's URL with them, over plain HTTP (a server on the network,
    # not the vendor's cloud API); its path kept (LM Studio's and Ollama's /v1).
    default = urlsplit(vendor.base_url or "")
    path = default.path or ("/v1" if vendor.api_shape == "openai_chat" else "")
    host = where.provider_host or default.hostname or "localhost"
    port = where.provider_port or default.port
    if port is None:
        raise InvalidAgent(f"{field}provider_port: give the port of {where.provider!r} at {host}")
    return urlunsplit(("http", f"{host}:{port}", path, "", ""))


def endpoints(agent: str, links: list[Link], box: SecretBox,
              environ: Mapping[str, str]) -> list[ModelEndpoint]:  # fmt: skip
    """The router's chain: the agent's provider, then its backups. A link without a key of its own
    uses the vendor's variable (OPENAI_API_KEY, ...) in the orchestrator's environment."""
    chain = []
    for index, link in enumerate(links):
        vendor = VENDORS[link.provider]
        key = box.decrypt(link.api_key_encrypted) if link.api_key_encrypted else None
        if key is None and vendor.key_env:
            key = environ.get(vendor.key_env) or None
        chain.append(ModelEndpoint(
            name=agent if index == 0 else f"{agent}-backup-{index}", provider=link.provider,
            model=link.model, base_url=link.base_url, api_key=SecretStr(key) if key else None,
        ))  # fmt: skip
    return chain
