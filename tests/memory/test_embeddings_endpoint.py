"""gpt-oss's /v1/embeddings through the official openai client: a real model, offline."""

from __future__ import annotations

import base64

import numpy as np
import openai
import pytest
from openai import AsyncOpenAI

from anvyl.gpt_oss.embeddings import DEFAULT_MODEL, DIMENSIONS


async def test_the_openai_client_gets_embeddings_that_place_related_texts_closer(
    embeddings_url: str,
) -> None:
    async with AsyncOpenAI(base_url=embeddings_url, api_key="unused", timeout=30) as client:
        texts = ["the PostgreSQL migration failed with a lock timeout",
                 "database schema upgrade aborted: could not obtain lock",
                 "a recipe for banana bread with walnuts"]  # fmt: skip
        answer = await client.embeddings.create(model=DEFAULT_MODEL, input=texts)
        as_base64 = await client.embeddings.create(model=DEFAULT_MODEL, input=texts[0],
                                                   encoding_format="base64")  # fmt: skip
        short = await client.embeddings.create(model=DEFAULT_MODEL, input=texts[0], dimensions=64)
    assert answer.model == DEFAULT_MODEL and [d.index for d in answer.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > unrelated + 0.1, (related, unrelated)
    assert answer.usage.prompt_tokens > 10
    # Asked for base64 (the client's own default, decoded by it), it is the same vector.
    raw = np.frombuffer(base64.b64decode(str(as_base64.data[0].embedding)), dtype="<f4")
    assert np.allclose(raw, vectors[0], atol=1e-6)
    assert len(short.data[0].embedding) == 64


async def test_bad_input_is_a_422_naming_the_field(embeddings_url: str) -> None:
    async with AsyncOpenAI(
        base_url=embeddings_url, api_key="unused", timeout=30, max_retries=0
    ) as client:
        with pytest.raises(openai.UnprocessableEntityError, match="input"):
            await client.embeddings.create(model=DEFAULT_MODEL, input=[])
        with pytest.raises(openai.UnprocessableEntityError, match="dimensions"):
            await client.embeddings.create(model=DEFAULT_MODEL, input="x", dimensions=100_000)
