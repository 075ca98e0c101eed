"""Live task events in this process: wake-ups for the streams following a task, and tokens.

Stored events (steps) live in the database, one per step, each with its `seq`. Token events (the
model's text as it streams) are live only: the process running the task hands them to the streams of its own process
that asked for them, and they are never stored. A token carries `after_seq`, the seq of the last
stored event of the task when it was published (a token is published only once every step
before it is stored), so `events.follow` can place it between the stored events exactly.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

TOKEN_EVENT = "token"


@dataclass
class Token:
    """A piece of a model turn's output, live only. kind: "content", "reasoning", or "discard"
    (the text streamed so far in this step is void: the stream broke and the turn is retried)."""

    after_seq: int
    step: int
    kind: str
    text: str

    def as_data(self) -> dict[str, object]:
        return {"step": self.step, "kind": self.kind, "text": self.text}


@dataclass(eq=False)  # compared (and hashed) by identity: one per stream
class Listener:
    waiter: asyncio.Event = field(default_factory=asyncio.Event)
    tokens: list[Token] | None = None  # None: this stream does not want tokens

    def take_tokens(self) -> list[Token]:
        if not self.tokens:
            return []
        taken, self.tokens = self.tokens, []
        return taken


class EventBus:
    """Tells the streams following a task that it has a new event. Events themselves live in the
    database; a stream that misses a wake-up (another replica wrote the event) finds it by polling."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._token_listeners: dict[str, int] = {}  # task id -> streams that want its tokens
        # Passes this process's wake-ups on to the other processes (PostgreSQL LISTEN/NOTIFY).
        self.relay: Callable[[str], None] | None = None

    def notify(self, task_id: str) -> None:
        """The task has new events, written by this process."""
        self.notify_local(task_id)
        if self.relay is not None:
            self.relay(task_id)

    def notify_local(self, task_id: str) -> None:
        """The task has new events: wake this process's streams only."""
        for listener in self._listeners.get(task_id, ()):
            listener.waiter.set()

    def wants_tokens(self, task_id: str) -> bool:
        """Whether a stream of this process follows the task's tokens (cheap: runs per delta)."""
        return task_id in self._token_listeners

    def publish_token(self, task_id: str, token: Token) -> None:
        """Hand a token to this process's streams of the task that want tokens (not stored, not
        relayed to other processes: see the module docstring)."""
        for listener in self._listeners.get(task_id, ()):
            if listener.tokens is not None:
                listener.tokens.append(token)
                listener.waiter.set()

    @contextmanager
    def listen(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set when the task has new stored events."""
        with self.subscribe(task_id) as listener:
            yield listener.waiter

    @contextmanager
    def subscribe(self, task_id: str, *, tokens: bool = False) -> Iterator[Listener]:
        """A listener woken by new stored events and, with `tokens`, handed the live tokens."""
        listener = Listener(tokens=[] if tokens else None)
        self._listeners[task_id].add(listener)
        if tokens:
            self._token_listeners[task_id] = self._token_listeners.get(task_id, 0) + 1
        try:
            yield listener
        finally:
            self._listeners[task_id].discard(listener)
            if not self._listeners[task_id]:
                del self._listeners[task_id]
            if tokens:
                self._token_listeners[task_id] -= 1
                if not self._token_listeners[task_id]:
                    del self._token_listeners[task_id]
