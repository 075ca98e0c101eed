"""The A2A routes: the public Agent Card and the JSON-RPC endpoint (behind the API key), served
by the a2a-sdk's JSON-RPC dispatcher with Anvyl's request handler.

The SDK (protobuf types, its server) is imported at the first A2A request, not with the app: it
would add about a second to every start of `anvyl serve` on a loaded machine."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from anvyl.orchestrator.api.auth import ApiKeys, require_api_key
from anvyl.orchestrator.api.schemas import Problem
from anvyl.orchestrator.api.services import services

if TYPE_CHECKING:
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher

# The SDK's names for these (a test checks they agree).
RPC_PATH = "/a2a"
CARD_PATH = "/.well-known/agent-card.json"
VERSION_HEADER = "A2A-Version"
METHODS = (
    "CancelTask", "CreateTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard", "GetTask", "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs", "ListTasks", "SendMessage", "SendStreamingMessage",
    "SubscribeToTask",
)  # fmt: skip

router = APIRouter(tags=["a2a"])


@functools.cache
def dispatcher() -> JsonRpcDispatcher:
    from a2a.server.context import ServerCallContext
    from a2a.server.routes.common import DefaultServerCallContextBuilder
    from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher

    from anvyl.orchestrator.a2a.handler import (
        AUTH_ENABLED,
        BASE_URL,
        SERVICES,
        AnvylRequestHandler,
    )

    class AnvylContext(DefaultServerCallContextBuilder):
        """The SDK's call context, plus what the handler needs of this app."""

        def build(self, request: Request) -> ServerCallContext:
            context = super().build(request)
            keys: ApiKeys = request.app.state.api_keys
            context.state[SERVICES] = request.app.state.services
            context.state[BASE_URL] = str(request.base_url)
            context.state[AUTH_ENABLED] = keys.enabled
            return context

    # Also the A2A 0.3 method names (message/send, tasks/get, ...), for older clients.
    return JsonRpcDispatcher(AnvylRequestHandler(), AnvylContext(), enable_v0_3_compat=True)


_RPC_BODY = {
    "description": "A JSON-RPC 2.0 call of an A2A method; `params` is that method's request "
    "(A2A 1.0, JSON names in camelCase), e.g. SendMessage `{\"message\": {\"messageId\", "
    "\"role\": \"ROLE_USER\", \"parts\": [{\"text\"}]}, \"metadata\"?}`",
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["jsonrpc", "method"],
        "properties": {
            "jsonrpc": {"type": "string", "enum": ["2.0"]},
            "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            "method": {"type": "string", "enum": list(METHODS)},
            "params": {"type": "object"},
        },
    }}},
}  # fmt: skip
_RPC_ANSWER = {
    "type": "object",
    "required": ["jsonrpc"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        "result": {"type": "object"},
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
    },
}  # fmt: skip
_RPC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the method's JSON-RPC answer: `result`, or `error` for a call it cannot "
        "answer (bad JSON, unknown method, invalid params, unknown task: never an HTTP error); "
        "SendStreamingMessage and SubscribeToTask answer an event stream of JSON-RPC answers",
        "content": {"application/json": {"schema": _RPC_ANSWER},
                    "text/event-stream": {"schema": {"type": "string"}}},
    },
    401: {"model": Problem},
}  # fmt: skip
_VERSION_PARAMETER = {
    "in": "header",
    "name": VERSION_HEADER,
    "required": False,
    "description": "the A2A protocol version of the call: `1.0` (without it, 0.3 method names)",
    "schema": {"type": "string"},
}


@router.get(
    CARD_PATH,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}},
                     "description": "the A2A Agent Card"}},
)  # fmt: skip
async def agent_card(request: Request) -> JSONResponse:
    """This orchestrator's A2A Agent Card (public: it says how to authenticate)."""
    from a2a.server.request_handlers.response_helpers import agent_card_to_dict

    from anvyl.orchestrator.a2a.card import build_card

    keys: ApiKeys = request.app.state.api_keys
    # The named agents only where the API is open to this caller without a key.
    local = not keys.enabled and keys.admits(request.client.host if request.client else None)
    names = await (await services(request)).agents.names() if local else []
    card = build_card(str(request.base_url), names, auth=keys.enabled, public=True)
    return JSONResponse(agent_card_to_dict(card))


@router.post(
    RPC_PATH,
    dependencies=[Depends(require_api_key)],
    responses=_RPC_RESPONSES,
    openapi_extra={"requestBody": _RPC_BODY, "parameters": [_VERSION_PARAMETER]},
)
async def a2a_rpc(request: Request) -> Response:
    """A2A JSON-RPC: SendMessage, SendStreamingMessage, GetTask, CancelTask, SubscribeToTask,
    GetExtendedAgentCard, each mapped onto Anvyl tasks."""
    return await dispatcher().handle_requests(request)
