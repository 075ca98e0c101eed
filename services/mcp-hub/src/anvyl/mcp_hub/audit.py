"""Structured logging and the per-server MCP middleware that audits and polices tool calls."""

import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

import structlog
from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp_types import CallToolResult, TextContent

# Argument names whose values never reach the log.
_SECRET_KEY_PATTERN = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|auth|credential|private[_-]?key)", re.IGNORECASE
)
# `KEY=value` pairs in environment lists, commands and the like.
_SECRET_ASSIGNMENT_PATTERN = re.compile(
    r"(?i)\b([\w-]*(?:pass(?:word)?|secret|token|api[_-]?key|credential)[\w-]*)=(\S+)"
)
MASK = "***"
_MAX_LOGGED_STRING = 500

CALLER_SCOPE_KEY = "anvyl.caller"


def configure_logging(json_output: bool = False, level: int = logging.INFO) -> None:
    # Plain stdlib logging first, so the SDK's rich `basicConfig` becomes a no-op; rich
    # rendering of per-request INFO lines costs more than the MCP call itself.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy_logger in ("mcp", "httpx", "httpx2", "docker"):
        logging.getLogger(noisy_logger).setLevel(logging.WARNING)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "anvyl.mcp_hub") -> Any:
    return structlog.get_logger(name)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_KEY_PATTERN.search(name))


def mask_secrets(value: Any, key: str | None = None) -> Any:
    """Copy of `value` with secret-looking keys and `NAME=secret` strings masked."""
    if key is not None and _SECRET_KEY_PATTERN.search(key):
        return MASK
    if isinstance(value, Mapping):
        return {str(k): mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        masked = _SECRET_ASSIGNMENT_PATTERN.sub(lambda m: f"{m.group(1)}={MASK}", value)
        if len(masked) > _MAX_LOGGED_STRING:
            return masked[:_MAX_LOGGED_STRING] + "...(truncated)"
        return masked
    return value


def describe_caller(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
    """Who made this request: the auth result set by the HTTP middleware, address, client name."""
    caller: dict[str, Any] = {}
    request = ctx.request
    scope = getattr(request, "scope", None)
    if isinstance(scope, Mapping):
        caller["auth"] = scope.get(CALLER_SCOPE_KEY, "unknown")
        client = scope.get("client")
        if client:
            caller["address"] = f"{client[0]}:{client[1]}"
    client_params = ctx.session.client_params if ctx.session is not None else None
    if client_params is not None:
        caller["client"] = f"{client_params.client_info.name}/{client_params.client_info.version}"
    return caller


def refusal_result(message: str) -> dict[str, Any]:
    result = CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


class ToolCallMiddleware:
    """Audits every `tools/call` and refuses, with a clear message, tools that policy withholds.

    Withheld tools (read-only mode, allow-lists) are also never registered, so they are
    absent from `tools/list`; this answers a caller that asks for one anyway.
    """

    def __init__(self, server_name: str, withheld_tools: Mapping[str, str]) -> None:
        self.server_name = server_name
        self.withheld_tools = dict(withheld_tools)
        self.log = get_logger("anvyl.mcp_hub.audit")

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params or {}
        tool_name = str(params.get("name", ""))
        arguments = params.get("arguments") or {}
        started = time.perf_counter()
        log = self.log.bind(
            server=self.server_name,
            tool=tool_name,
            arguments=mask_secrets(arguments),
            caller=describe_caller(ctx),
        )
        reason = self.withheld_tools.get(tool_name)
        if reason is not None:
            log.warning("tool_call", outcome="refused", reason=reason, duration_ms=0.0)
            return refusal_result(f"Tool '{tool_name}' is not available on this hub: {reason}.")
        try:
            result = await call_next(ctx)
        except Exception as exc:
            log.warning(
                "tool_call",
                outcome="protocol_error",
                error=str(exc),
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            raise
        is_error = isinstance(result, Mapping) and bool(result.get("isError"))
        event: dict[str, Any] = {
            "outcome": "error" if is_error else "ok",
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if is_error and isinstance(result, Mapping):
            content = result.get("content") or []
            if content and isinstance(content[0], Mapping):
                event["error"] = str(content[0].get("text", ""))[:_MAX_LOGGED_STRING]
        (log.warning if is_error else log.info)("tool_call", **event)
        return result
