"""`/v1/embeddings` (OpenAI wire format) from WordLlama, a static embedding model whose weights and
tokenizer ship inside its wheel: nothing is downloaded at run time, so the stack works offline.

WordLlama's own loader looks for the tokenizer under `tokenizer/` while the wheel ships it under
`tokenizers/` (and then tries the network), so the files are opened here directly.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DEFAULT_MODEL = "wordllama-l2-supercat"
DIMENSIONS = 256
MAX_INPUTS = 2048
MAX_INPUT_CHARS = 100_000


class StaticEmbedder:
    """The model (a token embedding table and its tokenizer), loaded once on first use (about
    0.5 s), shared by all requests. A text's vector is the mean of its tokens' vectors, as
    WordLlama computes it, but without padding every text of a batch to the longest one (which
    made a batch of long snippets tens of times slower)."""

    def __init__(self) -> None:
        self._table: np.ndarray | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[np.ndarray, Tokenizer]:
        with self._lock:
            if self._table is None or self._tokenizer is None:
                import wordllama
                from safetensors import safe_open
                from tokenizers import Tokenizer

                root = Path(wordllama.__file__).parent
                tokenizer = Tokenizer.from_file(
                    str(root / "tokenizers" / "l2_supercat_tokenizer_config.json")
                )
                tokenizer.no_padding()
                tokenizer.no_truncation()
                weights = root / "weights" / f"l2_supercat_{DIMENSIONS}.safetensors"
                with safe_open(str(weights), framework="np") as f:
                    self._table = np.ascontiguousarray(
                        f.get_tensor("embedding.weight"), dtype=np.float32
                    )
                self._tokenizer = tokenizer
            return self._table, self._tokenizer

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """L2-normalized float32 vectors, one row per text, and the number of tokens read."""
        table, tokenizer = self._load()
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        vectors = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        tokens = 0
        for row, encoding in enumerate(encodings):
            if not encoding.ids:
                continue
            # Each distinct token's row once, weighted by its count: far less memory traffic than
            # gathering a row per token.
            ids, counts = np.unique(
                np.clip(encoding.ids, 0, table.shape[0] - 1), return_counts=True
            )
            vectors[row] = counts.astype(np.float32) @ table[ids] / len(encoding.ids)
            tokens += len(encoding.ids)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors, tokens


class EmbeddingsBody(BaseModel):
    model: str = Field(default=DEFAULT_MODEL, max_length=200)
    input: str | list[str] = Field(description="a text or a list of texts")
    encoding_format: str = Field(default="float", pattern="^(float|base64)$")
    dimensions: int | None = Field(default=None, ge=1, le=DIMENSIONS)
    user: str | None = None


def embeddings_router(embedder: StaticEmbedder, model_name: str = DEFAULT_MODEL) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/embeddings")
    async def embeddings(body: EmbeddingsBody) -> dict[str, Any]:
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or len(texts) > MAX_INPUTS:
            raise HTTPException(422, f"input: give 1 to {MAX_INPUTS} texts")
        if any(len(t) > MAX_INPUT_CHARS for t in texts):
            raise HTTPException(422, f"input: each text at most {MAX_INPUT_CHARS} characters")
        vectors, tokens = await asyncio.to_thread(embedder.embed, texts)
        if body.dimensions is not None:  # Matryoshka-trained: a prefix is still an embedding
            vectors = vectors[:, : body.dimensions]
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        data = [
            {"object": "embedding", "index": i,
             "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
             if body.encoding_format == "base64" else v.tolist()}
            for i, v in enumerate(vectors)
        ]  # fmt: skip
        return {"object": "list", "model": model_name, "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip

    return router


def create_embeddings_app(model_name: str = DEFAULT_MODEL) -> FastAPI:
    """An embeddings-only service (`anvyl-gpt-oss embeddings`), for hosts that serve the chat model
    with vLLM."""
    app = FastAPI(title="anvyl embeddings")
    embedder = StaticEmbedder()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0,
                                            "owned_by": "anvyl"}]}  # fmt: skip

    app.include_router(embeddings_router(embedder, model_name))
    return app
