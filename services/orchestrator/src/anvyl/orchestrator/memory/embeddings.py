"""Embedding vectors from an OpenAI-compatible `/v1/embeddings` endpoint (gpt-oss serves one)."""

from __future__ import annotations

import numpy as np
from openai import AsyncOpenAI

from anvyl.orchestrator.logging import get_logger

log = get_logger(__name__)
_BATCH = 256


class Embedder:
    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float = 30.0) -> None:  # fmt: skip
        self.model = model
        # A local endpoint needs no key; the client insists on one.
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed",
                                   timeout=timeout_s, max_retries=1)  # fmt: skip

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), _BATCH):
            answer = await self._client.embeddings.create(
                model=self.model, input=texts[start : start + _BATCH]
            )
            rows += [item.embedding for item in sorted(answer.data, key=lambda d: d.index)]
        vectors = np.asarray(rows, dtype=np.float32)
        return normalize(vectors)

    async def close(self) -> None:
        await self._client.close()


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return vector.astype("<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")
