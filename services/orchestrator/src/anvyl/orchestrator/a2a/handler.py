"""The A2A request handler: each JSON-RPC method of the a2a-sdk's server, mapped onto Anvyl tasks.

SendMessage submits a task through the same `submit` as POST /orchestrate (background mode) and,
unless the client asked to return at once, waits for its end; GetTask reads it; CancelTask cancels
it as POST /tasks/{id}/cancel does; SendStreamingMessage and SubscribeToTask follow its events.
A message's text parts are the query; its metadata (or the request's) may carry the fields of
POST /orchestrate besides `query` and `mode`: `agent` picks a named agent (a skill of the card).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import A2AError as SdkError
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from fastapi import HTTPException
from google.protobuf import json_format
from pydantic import ValidationError
from starlette.requests import Request

from anvyl.orchestrator.a2a.card import build_card
from anvyl.orchestrator.a2a.mapping import (
    context_id,
    final_updates,
    step_update,
    to_a2a_task,
    token_update,
)
from anvyl.orchestrator.api.schemas import OrchestrateRequest
from anvyl.orchestrator.api.services import Services
from anvyl.orchestrator.api.tasks import submit
from anvyl.orchestrator.db.tables import Task as TaskRow
from anvyl.orchestrator.logging import get_logger
from anvyl.orchestrator.tasks.bus import Token
from anvyl.orchestrator.tasks.events import follow
from anvyl.orchestrator.tasks.states import FINAL_STATES, RESULT_EVENT

log = get_logger(__name__)
SERVICES = "anvyl.services"
BASE_URL = "anvyl.base_url"
AUTH_ENABLED = "anvyl.auth_enabled"
# How long CancelTask waits for a running task to stop before answering its current state.
CANCEL_WAIT_S = 10.0
# `submit` answers by the request's Accept header: the A2A call's own (text/event-stream for a
# streaming call) must not turn the submission into an SSE response.
_PLAIN_REQUEST_SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "headers": []}
_METADATA_FIELDS = frozenset(OrchestrateRequest.model_fields) - {"query", "mode"}


def _services(context: ServerCallContext) -> Services:
    services: Services = context.state[SERVICES]
    return services


def _query(message: Message) -> str:
    texts = [part.text for part in message.parts if part.WhichOneof("content") == "text"]
    query = "\n".join(text for text in texts if text.strip())
    if not query:
        raise InvalidParamsError(message="message.parts: no text part; send the query as text")
    return query


def _orchestrate_body(params: SendMessageRequest) -> OrchestrateRequest:
    if params.message.task_id:
        raise InvalidParamsError(
            message="message.taskId: an Anvyl task takes one message; send a new message "
            "without taskId (and the same contextId) to go on"
        )
    metadata: dict[str, Any] = {
        **json_format.MessageToDict(params.metadata),
        **json_format.MessageToDict(params.message.metadata),
    }
    # Metadata is open to every extension: only the task fields are read, the rest left alone.
    fields = {key: value for key, value in metadata.items() if key in _METADATA_FIELDS}
    try:
        return OrchestrateRequest.model_validate(
            {**fields, "query": _query(params.message), "mode": "background"}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{_where(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise InvalidParamsError(message=problems) from None


def _where(loc: tuple[int | str, ...]) -> str:
    """Where in the A2A message a field of POST /orchestrate's body came from."""
    if loc and loc[0] == "query":
        return "message.parts (the text)"
    return "metadata." + ".".join(str(p) for p in loc)


async def _submit(services: Services, params: SendMessageRequest) -> str:
    body = _orchestrate_body(params)
    try:
        request = Request({**_PLAIN_REQUEST_SCOPE, "headers": []})
        response = await submit(body, request, services, None, tokens=False)
    except HTTPException as exc:
        raise InvalidParamsError(message=str(exc.detail)) from None
    task_id: str = json.loads(bytes(response.body))["task_id"]
    log.info("a2a.task_submitted", task_id=task_id, agent=body.agent)
    return task_id


async def _task(services: Services, task_id: str) -> TaskRow:
    task = await services.store.get(task_id) if task_id else None
    if task is None:
        raise TaskNotFoundError(message=f"no task with id {task_id!r}")
    return task


async def _events(services: Services, task_id: str) -> AsyncGenerator[Event]:
    """The task's steps and live model output, then its result and final status."""
    task = await _task(services, task_id)
    ctx = context_id(task)
    yield to_a2a_task(task)
    # The steps after that snapshot (event_seq is the seq of its last event).
    async for event in follow(services.store, services.bus, task_id, task.event_seq, tokens=True):
        if isinstance(event, Token):
            if event.kind in ("content", "discard"):  # not the model's reasoning
                yield token_update(task_id, ctx, event)
            continue
        if event.type == RESULT_EVENT:
            break
        if event.type == "status" and event.data.get("status") in FINAL_STATES:
            continue  # said by the final updates, after the result artifact
        yield step_update(task_id, ctx, event)
    for update in final_updates(await _task(services, task_id)):
        yield update


class AnvylRequestHandler(RequestHandler):
    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        services = _services(context)
        task_id = await _submit(services, params)
        if not params.configuration.return_immediately:
            async for _ in follow(services.store, services.bus, task_id):
                pass
        return to_a2a_task(await _task(services, task_id))

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        services = _services(context)
        task_id = await _submit(services, params)
        async for event in self._guarded(_events(services, task_id)):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        services = _services(context)
        task = await _task(services, params.id)
        if task.status in FINAL_STATES:
            raise UnsupportedOperationError(
                message=f"task {task.id} already ended ({task.status}); read it with GetTask"
            )
        async for event in self._guarded(_events(services, task.id)):
            yield event

    @staticmethod
    async def _guarded(events: AsyncGenerator[Event]) -> AsyncGenerator[Event]:
        # The SDK's stream turns only its own errors into a JSON-RPC error event; anything else
        # (the database went away) would cut the stream without a word.
        try:
            async for event in events:
                yield event
        except SdkError:
            raise
        except Exception as exc:
            log.warning("a2a.stream_failed", error=repr(exc))
            raise InternalError(message=f"the task's events could not be read: {exc}") from exc
        finally:
            await events.aclose()

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        return to_a2a_task(await _task(_services(context), params.id))

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        services = _services(context)
        task = await _task(services, params.id)
        if task.status in FINAL_STATES:
            raise TaskNotCancelableError(
                message=f"task {task.id} already ended ({task.status}); nothing to cancel"
            )
        await services.store.request_cancel(task.id)
        try:
            async with asyncio.timeout(CANCEL_WAIT_S):
                async for _ in follow(services.store, services.bus, task.id):
                    pass
        except TimeoutError:
            pass  # still stopping: the answer shows its state now, GetTask shows the end
        return to_a2a_task(await _task(services, task.id))

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        raise UnsupportedOperationError(message="ListTasks: list the tasks with GET /tasks")

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        if not context.state.get(AUTH_ENABLED):
            raise ExtendedAgentCardNotConfiguredError(
                message="auth is off: the public card at /.well-known/agent-card.json lists "
                "every skill"
            )
        services = _services(context)
        return build_card(context.state[BASE_URL], await services.agents.names(), auth=True,
                          public=False)  # fmt: skip

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError(message=_NO_PUSH)


_NO_PUSH = "push notifications are not supported: stream (SendStreamingMessage) or poll (GetTask)"
