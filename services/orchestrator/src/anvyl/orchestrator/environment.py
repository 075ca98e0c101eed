"""The process's environment before the settings read it: the `.env` file, then the short names of
the deployment guide (PROJECT_ID, REGION, ...) as aliases of the ANVYL_* variables.

A variable already in the environment wins over `.env`, and an ANVYL_* variable wins over its alias.
Everything reads variables from `os.environ` (the settings, the model endpoints, the hub), so the
aliases are copied there once, at start-up, rather than taught to each reader.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from anvyl.orchestrator.llm.vendors import VENDORS

ENV_FILE_VARIABLE = "ANVYL_ENV_FILE"  # another file than ./.env
ALIASES = {
    "PROJECT_ID": "ANVYL_GCP_PROJECT",
    "REGION": "ANVYL_GCP_REGION",
    "GCS_BUCKET": "ANVYL_GCS_BUCKET",
    "DATABASE_URL": "ANVYL_DATABASE_URL",
    "GPT_OSS_URL": "ANVYL_GPT_OSS_URL",
}
LLM_API_KEY = "LLM_API_KEY"  # the key of the cloud provider named by ANVYL_LLM_PROVIDER
PROVIDER_VARIABLE = "ANVYL_LLM_PROVIDER"
DEFAULT_PROVIDER = "openai"
CLOUD_PROVIDERS = {name: v.key_env for name, v in VENDORS.items() if not v.local and v.key_env}


class UnusableEnvironment(ValueError):
    """A variable of the environment or `.env` that cannot be used as given."""


def load_environment(
    environ: MutableMapping[str, str] | None = None, env_file: Path | None = None
) -> dict[str, str]:
    """Fill `environ` (default: os.environ) from the `.env` file and the aliases; returns what was
    set. Raises UnusableEnvironment for an unknown ANVYL_LLM_PROVIDER while LLM_API_KEY is set."""
    environ = os.environ if environ is None else environ
    added: dict[str, str] = {}
    path = env_file or Path(environ.get(ENV_FILE_VARIABLE) or ".env")
    if path.is_file():
        for name, value in dotenv_values(path).items():
            if value is not None and name not in environ:
                added[name] = environ[name] = value
    for alias, name in ALIASES.items():
        value = environ.get(alias)
        if value and not environ.get(name):
            added[name] = environ[name] = _database_url(value) if alias == "DATABASE_URL" else value
    key = environ.get(LLM_API_KEY)
    if key:
        provider = environ.get(PROVIDER_VARIABLE) or DEFAULT_PROVIDER
        if provider not in CLOUD_PROVIDERS:
            raise UnusableEnvironment(
                f"{PROVIDER_VARIABLE}={provider!r}: LLM_API_KEY is the key of a cloud provider, "
                f"one of {', '.join(CLOUD_PROVIDERS)}"
            )
        if not environ.get(CLOUD_PROVIDERS[provider]):
            added[CLOUD_PROVIDERS[provider]] = environ[CLOUD_PROVIDERS[provider]] = key
    return added


def _database_url(url: str) -> str:
    """postgres:// and postgresql:// (the usual DATABASE_URL) with the async driver Anvyl uses."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url.removeprefix(scheme)
    return url
