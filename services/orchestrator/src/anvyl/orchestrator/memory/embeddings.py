"""Embedding vectors from an OpenAI-compatible `/v1/embeddings` endpoint (gpt-oss serves one)."""

from __future__ import annotations

import base64

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
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), _BATCH):
            # base64 asked for explicitly comes back undecoded: decoded here in one step (the
            # client's own decoding costs several milliseconds a call).
            answer = await self._client.embeddings.create(
                model=self.model, input=texts[start : start + _BATCH], encoding_format="base64"
            )
            rows += [_decode(item.embedding) for item in sorted(answer.data, key=lambda d: d.index)]
        return normalize(np.stack(rows))

    async def close(self) -> None:
        await self._client.close()


def _decode(data: object) -> np.ndarray:
    if isinstance(data, str):
        return np.frombuffer(base64.b64decode(data), dtype="<f4")
    return np.asarray(data, dtype=np.float32)  # a server that ignores encoding_format


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return vector.astype("<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")
