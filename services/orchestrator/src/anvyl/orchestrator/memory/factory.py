"""The memory backend the settings choose."""

from __future__ import annotations

from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.memory.base import Memory
from anvyl.orchestrator.memory.embeddings import Embedder
from anvyl.orchestrator.memory.store import DatabaseMemory
from anvyl.orchestrator.settings import Settings


def embedder_from(settings: Settings) -> Embedder | None:
    if not settings.embeddings_url:
        return None
    key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
    return Embedder(settings.embeddings_url, settings.embeddings_model, key)


def build_memory(settings: Settings, db: Database) -> Memory | None:
    """None when memory is off."""
    if settings.memory_backend == "off":
        return None
    if settings.memory_backend == "cognee":
        from anvyl.orchestrator.memory.cognee_backend import CogneeMemory  # the optional extra

        return CogneeMemory.from_settings(settings)
    return DatabaseMemory(db, embedder_from(settings))
