"""Ask another A2A agent (another Anvyl, or any agent speaking A2A) one question, with the
a2a-sdk's client: its Agent Card first, then the message, then the final answer's text."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import uuid

import certifi
import httpx
from a2a.client import (
    A2AClientError,
    A2AClientTimeoutError,
    AgentCardResolutionError,
    Client,
    ClientConfig,
    ClientFactory,
)
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
)
from a2a.utils.errors import A2AError as SdkError

from anvyl.orchestrator.logging import get_logger

log = get_logger(__name__)

_DONE = {TaskState.TASK_STATE_COMPLETED}
_FAILED = {
    TaskState.TASK_STATE_FAILED: "failed",
    TaskState.TASK_STATE_CANCELED: "was cancelled",
    TaskState.TASK_STATE_REJECTED: "was rejected",
    # Interrupted: this client has no one to ask for the input or the credentials.
    TaskState.TASK_STATE_INPUT_REQUIRED: "asks for more input, which this client cannot give",
    TaskState.TASK_STATE_AUTH_REQUIRED: "asks for other credentials",
}
_CANCEL_TIMEOUT_S = 3.0
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 1.0


@functools.cache
def _tls() -> ssl.SSLContext:
    # Built once: a new one per call (what httpx does for each client) costs about 40 ms.
    return ssl.create_default_context(cafile=certifi.where())


class A2AError(Exception):
    """An A2A agent gave no answer: unreachable, refused the token, too slow, or its task did not
    complete. The message names the agent's URL."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"A2A agent at {url}: {problem}")


def _text(parts: list[Part]) -> str:
    return "".join(part.text for part in parts if part.WhichOneof("content") == "text")


def _answer(task: Task) -> str:
    """The answer in a final task: its artifacts' text, else its final status message."""
    text = "\n".join(t for artifact in task.artifacts if (t := _text(list(artifact.parts))))
    if text:
        return text
    if task.status.HasField("message"):
        return _text(list(task.status.message.parts))
    replies = [m for m in task.history if m.role == Role.ROLE_AGENT]
    return _text(list(replies[-1].parts)) if replies else ""


class _Asking:
    """One question: the stream of answers (the task whole, or its updates), then, unless the
    stream ended it, GetTask until the task ends."""

    def __init__(self, url: str, client: Client) -> None:
        self.url = url
        self.client = client
        self.task_id: str | None = None
        self.task = Task()  # what the stream told of it so far

    async def ask(self, query: str) -> str:
        request = SendMessageRequest(message=Message(
            message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text=query)],
        ))  # fmt: skip
        async for response in self.client.send_message(request):
            kind = response.WhichOneof("payload")
            if kind == "message":  # a direct reply, no task
                return _text(list(response.message.parts))
            if kind == "task":
                self.task.CopyFrom(response.task)
            elif kind == "status_update":
                self.task.id = response.status_update.task_id
                self.task.status.CopyFrom(response.status_update.status)
            elif kind == "artifact_update":
                self._add(response.artifact_update)
            self.task_id = self.task.id or None
            if self._ended(self.task.status.state):
                break
        if self.task_id is None:
            raise A2AError(self.url, "answered neither a task nor a message")
        if self._ended(self.task.status.state) and _answer(self.task):
            return self._outcome(self.task)
        # A non-streaming agent may answer before the end; the whole task is in GetTask.
        return await self._final()

    def _add(self, update: TaskArtifactUpdateEvent) -> None:
        for artifact in self.task.artifacts:
            if artifact.artifact_id == update.artifact.artifact_id:
                if not update.append:
                    del artifact.parts[:]
                artifact.parts.extend(update.artifact.parts)
                return
        self.task.artifacts.append(update.artifact)

    @staticmethod
    def _ended(state: TaskState) -> bool:
        return state in _DONE or state in _FAILED

    def _outcome(self, task: Task) -> str:
        if task.status.state in _DONE:
            return _answer(task)
        why = _answer(task) or "no reason given"
        raise A2AError(self.url, f"task {task.id} {_FAILED[task.status.state]}: {why}")

    async def _final(self) -> str:
        assert self.task_id is not None
        pause = _POLL_FIRST_S
        while True:
            task = await self.client.get_task(GetTaskRequest(id=self.task_id))
            if self._ended(task.status.state):
                return self._outcome(task)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_S)

    async def cancel(self) -> None:
        """Best effort, after a timeout: the agent need not go on working for nobody."""
        if self.task_id is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CANCEL_TIMEOUT_S):
                await self.client.cancel_task(CancelTaskRequest(id=self.task_id))


def _problem(exc: Exception) -> str:
    """What went wrong, in words that say what to fix."""
    if isinstance(exc, AgentCardResolutionError):
        if exc.status_code in (401, 403):
            return f"refused the token (HTTP {exc.status_code}) for its Agent Card"
        return f"no Agent Card at /.well-known/agent-card.json: {exc.message}"
    if isinstance(exc, A2AClientTimeoutError):
        return f"a request timed out: {exc.message}"
    if isinstance(exc, A2AClientError):
        if "HTTP Error 401" in exc.message or "HTTP Error 403" in exc.message:
            return f"refused the token ({exc.message.split(':')[0]}): check the host's token"
        return exc.message
    if isinstance(exc, SdkError):
        return f"refused the message: {exc.message} ({type(exc).__name__})"
    if isinstance(exc, httpx.HTTPError):
        return f"unreachable: {exc!r}"
    return f"{type(exc).__name__}: {exc}"


async def ask_a2a_agent(url: str, token: str | None, query: str, timeout_s: float) -> str:
    """Ask the A2A agent at `url` (its base URL: the card is at /.well-known/agent-card.json)
    `query`, with `token` as its bearer token, and return the text of its final answer within
    `timeout_s` seconds (the card, the message and the wait together). Raises A2AError."""
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        headers=headers, timeout=httpx.Timeout(timeout_s), verify=_tls()
    ) as http:
        asking: _Asking | None = None
        client: Client | None = None
        try:
            async with asyncio.timeout(timeout_s):
                config = ClientConfig(httpx_client=http, streaming=True)
                client = await ClientFactory(config).create_from_url(url)
                asking = _Asking(url, client)
                return await asking.ask(query)
        except TimeoutError:
            if asking is not None:
                await asking.cancel()
            raise A2AError(url, f"no answer within {timeout_s:g}s") from None
        except A2AError:
            raise
        except (SdkError, httpx.HTTPError, ValueError) as exc:
            # ValueError: the SDK's word for a card with no transport this client speaks.
            log.info("a2a.ask_failed", url=url, error=repr(exc))
            raise A2AError(url, _problem(exc)) from exc
        finally:
            if client is not None:
                await client.close()
