"""Routes a request over named endpoints: primary, then fallbacks; retries, circuit breakers."""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from anvyl.orchestrator.llm.circuit import CircuitBreaker, CircuitState
from anvyl.orchestrator.llm.config import ModelConfig, ModelEndpoint
from anvyl.orchestrator.llm.errors import (
    AllModelsFailed,
    ChunkTimeout,
    EndpointError,
    FirstTokenTimeout,
    NoModelConfigured,
    SchemaValidationFailed,
    TotalTimeout,
)
from anvyl.orchestrator.llm.models import make_model
from anvyl.orchestrator.llm.models.base import Model, ModelResult, StreamDone
from anvyl.orchestrator.llm.pricing import call_cost
from anvyl.orchestrator.llm.structured import (
    repair_request,
    validate_answer,
    with_schema_instruction,
)
from anvyl.orchestrator.llm.types import (
    Attempt,
    FinalResponse,
    ModelRequest,
    ModelResponse,
    ResponseMetadata,
    StreamError,
    StreamEvent,
)

log = logging.getLogger(__name__)


class ModelRouter:
    def __init__(
        self,
        endpoints: Sequence[ModelEndpoint],
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        models: Mapping[str, Model] | None = None,
    ) -> None:
        """``models``: ready clients by endpoint name (e.g. a ScriptedModel); the rest are built
        from each endpoint's vendor on first use."""
        self.endpoints = list(endpoints)
        self._models: dict[str, Model] = dict(models or {})
        self.circuits = {
            e.name: CircuitBreaker(failure_threshold=failure_threshold, cooldown_s=cooldown_s)
            for e in self.endpoints
        }

    @classmethod
    def from_config(cls, config: ModelConfig) -> ModelRouter:
        return cls(
            config.chain(),
            failure_threshold=config.routing.circuit_failure_threshold,
            cooldown_s=config.routing.circuit_cooldown_s,
        )

    @classmethod
    def over(
        cls, *models: Model, failure_threshold: int = 3, cooldown_s: float = 30.0
    ) -> ModelRouter:
        """A router over ready clients, in this order (their endpoints carry the settings)."""
        return cls(
            [m.endpoint for m in models],
            failure_threshold=failure_threshold,
            cooldown_s=cooldown_s,
            models={m.endpoint.name: m for m in models},
        )

    def model(self, endpoint: ModelEndpoint) -> Model:
        # Clients are created on first use so an unused local runner never loads.
        if endpoint.name not in self._models:
            self._models[endpoint.name] = make_model(endpoint)
        return self._models[endpoint.name]

    def preferring(self, name: str | None) -> ModelRouter:
        """This router with endpoint `name` first, then the rest of its chain (unchanged for None
        or an unknown name). A shallow copy: it shares the clients and circuit breakers, which stay
        this router's to close."""
        if name is None or self.endpoints[0].name == name:
            return self
        preferred = copy.copy(self)
        preferred.endpoints = sorted(self.endpoints, key=lambda endpoint: endpoint.name != name)
        return preferred

    def ordered(self, preference: str) -> ModelRouter:
        """This router with its local endpoints first (`local`) or its online ones first
        (`online`), each group in its configured order; `auto` keeps the configured order. A shallow
        copy, as `preferring` makes."""
        if preference not in ("local", "online"):
            return self
        endpoints = sorted(self.endpoints, key=lambda e: e.is_local != (preference == "local"))
        if endpoints == self.endpoints:
            return self
        ordered = copy.copy(self)
        ordered.endpoints = endpoints
        return ordered

    async def aclose(self) -> None:
        models, self._models = self._models, {}
        for model in models.values():
            await model.aclose()

    async def __aenter__(self) -> ModelRouter:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- non-streaming ---------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The first successful answer along the chain.

        Raises AllModelsFailed (with the attempts) or NoModelConfigured.
        """
        prepared = self._prepare(request)
        started = time.perf_counter()
        attempts: list[Attempt] = []
        for endpoint in self.endpoints:
            result = await self._complete_on(endpoint, prepared, attempts)
            if result is None:
                continue
            response = self._response(endpoint, result, attempts, started, ttft=None)
            if request.response_schema is None:
                return response
            value, problem = validate_answer(response.content, request.response_schema)
            if problem is not None:
                # One retry on the same endpoint, told what was wrong.
                retry = repair_request(prepared, response.content, problem)
                result = await self._complete_on(endpoint, retry, attempts)
                if result is None:
                    continue
                response = self._response(endpoint, result, attempts, started, ttft=None)
                value, problem = validate_answer(response.content, request.response_schema)
                if problem is not None:
                    raise SchemaValidationFailed(problem, response.content)
            response.parsed = value
            return response
        raise AllModelsFailed(attempts)

    async def _complete_on(
        self, endpoint: ModelEndpoint, request: ModelRequest, attempts: list[Attempt]
    ) -> ModelResult | None:
        circuit = self.circuits[endpoint.name]
        for attempt_number in range(endpoint.retries + 1):
            if not circuit.allow():
                attempts.append(self._attempt(endpoint, None, 0.0, skipped=True))
                return None
            began = time.perf_counter()
            try:
                async with asyncio.timeout(endpoint.timeout):
                    result = await self.model(endpoint).complete(endpoint.tuned(request))
            except TimeoutError:
                error: EndpointError = TotalTimeout(endpoint.timeout)
            except EndpointError as exc:
                error = exc
            except BaseException:
                circuit.release_probe()  # cancelled: the probe told nothing about the endpoint
                raise
            else:
                circuit.record_success()
                attempts.append(self._attempt(endpoint, None, time.perf_counter() - began))
                return result
            attempts.append(self._attempt(endpoint, error, time.perf_counter() - began))
            if not await self._after_failure(endpoint, circuit, error, attempt_number):
                return None
        return None

    async def _after_failure(
        self, endpoint: ModelEndpoint, circuit: CircuitBreaker, error: EndpointError, number: int
    ) -> bool:
        """Record the failure; wait and return True when the same endpoint should be tried again."""
        if error.counts_against_circuit:
            circuit.record_failure()
        else:
            circuit.release_probe()
        log.info("model endpoint %s failed: %s", endpoint.name, error)
        if not error.retryable or number >= endpoint.retries:
            return False
        if circuit.state is not CircuitState.closed:
            return False
        if error.retry_after is not None:
            if error.retry_after > endpoint.max_retry_after:
                return False  # a long wait is better spent on the next endpoint
            delay = error.retry_after
        else:
            # Full jitter: spreads retries of many callers over the window.
            delay = random.uniform(0, min(endpoint.backoff_max, endpoint.backoff_base * 2**number))  # noqa: S311
        await asyncio.sleep(delay)
        return True

    # -- streaming -------------------------------------------------------------------------------

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Deltas, then one FinalResponse. Falls back until the first delta reaches the caller;
        a failure after that ends the stream with a StreamError event."""
        prepared = self._prepare(request)
        started = time.perf_counter()
        attempts: list[Attempt] = []
        for endpoint in self.endpoints:
            circuit = self.circuits[endpoint.name]
            for attempt_number in range(endpoint.retries + 1):
                if not circuit.allow():
                    attempts.append(self._attempt(endpoint, None, 0.0, skipped=True))
                    break
                began = time.perf_counter()
                deadline = began + endpoint.timeout
                ttft: float | None = None
                chunks = self.model(endpoint).stream(endpoint.tuned(prepared))
                error: EndpointError | None = None
                try:
                    while True:
                        limit = (
                            endpoint.first_token_timeout if ttft is None else endpoint.chunk_timeout
                        )
                        remaining = deadline - time.perf_counter()
                        try:
                            async with asyncio.timeout(min(limit, remaining)):
                                item = await anext(chunks)
                        except TimeoutError:
                            if remaining <= limit:
                                raise TotalTimeout(endpoint.timeout) from None
                            if ttft is None:
                                raise FirstTokenTimeout(limit) from None
                            raise ChunkTimeout(limit) from None
                        except StopAsyncIteration:
                            raise EndpointError(
                                "stream ended without a final answer",
                                retryable=True,
                                kind="protocol",
                            ) from None
                        if isinstance(item, StreamDone):
                            circuit.record_success()
                            attempts.append(
                                self._attempt(endpoint, None, time.perf_counter() - began)
                            )
                            response = self._response(
                                endpoint, item.result, attempts, started, ttft
                            )
                            if request.response_schema is not None:
                                value, problem = validate_answer(
                                    response.content, request.response_schema
                                )
                                if problem is not None:
                                    yield StreamError(
                                        message=problem, endpoint=endpoint.name, attempts=attempts
                                    )
                                    return
                                response.parsed = value
                            yield FinalResponse(response=response)
                            return
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        yield item
                except EndpointError as exc:
                    error = exc
                except BaseException:
                    # Cancelled, or the caller stopped reading: free a half-open probe slot.
                    circuit.release_probe()
                    raise
                finally:
                    await chunks.aclose()
                assert error is not None
                attempts.append(self._attempt(endpoint, error, time.perf_counter() - began))
                if ttft is not None:
                    # Part of the answer already reached the caller: no silent switch of model.
                    if error.counts_against_circuit:
                        circuit.record_failure()
                    yield StreamError(
                        message=f"{endpoint.name} failed mid-stream: {error}",
                        endpoint=endpoint.name,
                        attempts=attempts,
                    )
                    return
                if not await self._after_failure(endpoint, circuit, error, attempt_number):
                    break
        raise AllModelsFailed(attempts)

    # -- helpers ---------------------------------------------------------------------------------

    def _prepare(self, request: ModelRequest) -> ModelRequest:
        """The request as every endpoint gets it; refused when there is no endpoint to ask."""
        if not self.endpoints:
            raise NoModelConfigured("no model endpoint is configured")
        return with_schema_instruction(request)

    def _attempt(
        self,
        endpoint: ModelEndpoint,
        error: EndpointError | None,
        latency: float,
        *,
        skipped: bool = False,
    ) -> Attempt:
        return Attempt(
            endpoint=endpoint.name,
            provider=endpoint.provider,
            model_id=endpoint.model,
            ok=error is None and not skipped,
            error=str(error) if error is not None else ("circuit open" if skipped else None),
            error_type=error.kind if error is not None else ("circuit_open" if skipped else None),
            status_code=error.status_code if error is not None else None,
            latency_s=latency,
            skipped=skipped,
        )

    def _response(
        self,
        endpoint: ModelEndpoint,
        result: ModelResult,
        attempts: list[Attempt],
        started: float,
        ttft: float | None,
    ) -> ModelResponse:
        return ModelResponse(
            content=result.content,
            tool_calls=result.tool_calls,
            reasoning=result.reasoning,
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=call_cost(endpoint, result.model_id, result.usage),
            metadata=ResponseMetadata(
                endpoint=endpoint.name,
                provider=endpoint.provider,
                model_id=result.model_id,
                latency_s=time.perf_counter() - started,
                ttft_s=ttft,
                attempts=list(attempts),
            ),
        )
