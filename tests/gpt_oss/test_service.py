"""The gpt-oss service: OpenAI-compatible API over the mlx runner, harmony normalized."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import uvicorn
from fastapi import FastAPI
from tests.helpers import serving_process

from anvyl.gpt_oss.cli import Engine, choose_engine, vllm_serve_argv
from anvyl.gpt_oss.runners import (
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
    LocalRunner,
    get_runner,
    register_runner,
)
from anvyl.gpt_oss.service import create_app

HARMONY_OUTPUT = (
    "<|channel|>analysis<|message|>The user wants files listed.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.list_files <|constrain|>json"
    '<|message|>{"path": "."}<|call|>'
)


class HarmonyScriptRunner(LocalRunner):
    """Stands in for a gpt-oss engine: emits raw harmony text, token-sized pieces."""

    seen: list[GenerationRequest] = []

    async def load(self) -> None:
        return None

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.seen.append(request)
        return GenerationResult(HARMONY_OUTPUT, "stop", 20, 30, self.model)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        self.seen.append(request)
        for start in range(0, len(HARMONY_OUTPUT), 3):
            yield GenerationChunk(HARMONY_OUTPUT[start : start + 3], None, 20, start // 3 + 1)
        yield GenerationChunk("", "stop", 20, 30)

    async def close(self) -> None:
        return None


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "service did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def test_service_with_the_mlx_runner_answers_openai_clients(tiny_model: Path) -> None:
    runner = get_runner("mlx")(str(tiny_model))
    with serving(create_app(runner, served_model_name="tiny")) as url:
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=30)
        models = await client.models.list()
        assert [m.id for m in models.data] == ["tiny"]
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "list_files",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ]
        completion = await client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=7,
            tools=tools,  # type: ignore[arg-type]
        )
        assert completion.usage is not None and completion.usage.completion_tokens == 7
        assert completion.choices[0].message.content
        stream = await client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in stream:
            pieces += [c.delta.content or "" for c in chunk.choices]
            usage = chunk.usage or usage
        assert "".join(pieces) == completion.choices[0].message.content
        assert usage is not None and usage.completion_tokens == 7
        await client.close()


async def test_service_normalizes_harmony_output_streaming_and_not() -> None:
    register_runner("harmony-script", HarmonyScriptRunner)
    runner = get_runner("harmony-script")("gpt-oss-script")
    with serving(create_app(runner)) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=30)
        history = [
            {"role": "user", "content": "files?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "list_files", "arguments": '{"path": "src"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a.py"},
        ]
        completion = await client.chat.completions.create(model="m", messages=history)  # type: ignore[arg-type]
        message = completion.choices[0].message
        assert message.content is None
        assert message.model_extra is not None
        assert message.model_extra["reasoning_content"] == "The user wants files listed."
        assert message.tool_calls is not None
        call = message.tool_calls[0]
        assert call.type == "function"
        assert call.function.name == "list_files" and json.loads(call.function.arguments) == {
            "path": "."
        }
        assert completion.choices[0].finish_reason == "tool_calls"
        # The runner got the arguments as an object, as chat templates expect.
        assert HarmonyScriptRunner.seen[0].messages[1]["tool_calls"][0]["function"][
            "arguments"
        ] == {"path": "src"}

        stream = await client.chat.completions.create(
            model="m",
            messages=history,  # type: ignore[arg-type]
            stream=True,
        )
        raw = []
        arguments = ""
        async for chunk in stream:  # type: ignore[union-attr]
            raw.append(chunk.model_dump_json())
            for choice in chunk.choices:
                for delta_call in choice.delta.tool_calls or []:
                    arguments += (
                        (delta_call.function.arguments or "") if delta_call.function else ""
                    )
        assert not any("<|" in line for line in raw)
        assert json.loads(arguments) == {"path": "."}
        await client.close()


def test_cli_serve_with_the_mlx_engine(tiny_model: Path, tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "anvyl.gpt_oss", "serve", "--model", str(tiny_model),
            "--engine", "mlx", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with serving_process(argv, f"http://127.0.0.1:{port}/health", tmp_path / "serve.log",
                         env=env, stop_timeout_s=15):  # fmt: skip
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=30,
        ).json()
        assert answer["usage"]["completion_tokens"] == 4
        assert answer["model"] == str(tiny_model)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_vllm_command_switches_on_the_gpt_oss_parsers() -> None:
    argv = vllm_serve_argv("openai/gpt-oss-20b", "0.0.0.0", 8000, "gpt-oss")
    assert argv[:3] == ["vllm", "serve", "openai/gpt-oss-20b"]
    joined = " ".join(argv)
    for flag in [
        "--tool-call-parser openai",
        "--reasoning-parser openai_gptoss",
        "--enable-auto-tool-choice",
        "--port 8000",
        "--served-model-name gpt-oss",
    ]:
        assert flag in joined
    # No CUDA and no vLLM here: auto picks mlx; an explicit choice is kept.
    assert choose_engine(Engine.auto) is Engine.mlx
    assert choose_engine(Engine.vllm) is Engine.vllm
