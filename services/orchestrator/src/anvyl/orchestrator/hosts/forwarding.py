"""Loop guard for queries that travel between hosts: a hop count, a trace id, and the path so far.

A forwarded query carries `X-Anvyl-Hops` (how many hosts it passed), `X-Anvyl-Trace-Id` (one id for
the whole conversation, for the logs) and `X-Anvyl-Via` (the ids of the hosts it passed). A host
refuses a query that already passed it (A asks B asks A) or that went past the hop limit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HOPS_HEADER = "X-Anvyl-Hops"
TRACE_HEADER = "X-Anvyl-Trace-Id"
VIA_HEADER = "X-Anvyl-Via"
# On a 409 that refuses a forwarded query (a loop, too many hops): `loop`.
REFUSED_HEADER = "X-Anvyl-Refused"
# Where a task keeps what it was forwarded with, so the host tools it calls forward it further.
REQUEST_KEY = "forwarded"
_TRACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HOST_ID = re.compile(r"^[a-z0-9-]{1,63}$")
_MAX_VIA = 32


class ForwardingRefused(ValueError):
    """The query went round in a loop, or past the hop limit."""


class BadForwardingHeader(ValueError):
    """A forwarding header is not what Anvyl sends."""


@dataclass(frozen=True)
class Forwarded:
    """How a query reached this host: hops so far, its trace, the hosts it passed (this one not yet)."""

    hops: int = 0
    trace_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    via: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Forwarded:
        raw_hops = headers.get(HOPS_HEADER.lower()) or headers.get(HOPS_HEADER)
        raw_trace = headers.get(TRACE_HEADER.lower()) or headers.get(TRACE_HEADER)
        raw_via = headers.get(VIA_HEADER.lower()) or headers.get(VIA_HEADER) or ""
        try:
            hops = int(raw_hops) if raw_hops else 0
        except ValueError:
            raise BadForwardingHeader(f"{HOPS_HEADER}: {raw_hops!r} is not a number") from None
        if not 0 <= hops <= 1000:
            raise BadForwardingHeader(f"{HOPS_HEADER}: {hops} is out of range (0-1000)")
        if raw_trace and not _TRACE.match(raw_trace):
            raise BadForwardingHeader(f"{TRACE_HEADER}: letters, digits, _ and - only, at most 64")
        via = tuple(v.strip() for v in raw_via.split(",") if v.strip())
        if len(via) > _MAX_VIA or not all(_HOST_ID.match(v) for v in via):
            raise BadForwardingHeader(f"{VIA_HEADER}: a comma-separated list of host ids")
        return cls(hops, raw_trace or uuid.uuid4().hex, via)

    @classmethod
    def from_request(cls, request: Mapping[str, Any] | None) -> Forwarded:
        """What a task was forwarded with (its stored request), or a fresh start."""
        stored = (request or {}).get(REQUEST_KEY) or {}
        return cls(int(stored.get("hops", 0)), str(stored.get("trace_id") or uuid.uuid4().hex),
                   tuple(stored.get("via") or ()))  # fmt: skip

    def check(self, self_id: str, max_hops: int) -> None:
        """Refuse a query that passed this host already or went too far."""
        if self_id in self.via:
            path = " -> ".join([*self.via, self_id])
            raise ForwardingRefused(f"forwarding loop refused: trace {self.trace_id} already passed "
                                    f"through this host ({path})")  # fmt: skip
        if self.hops > max_hops:
            raise ForwardingRefused(f"forwarding refused: the query passed {self.hops} hosts, more than "
                                    f"the limit of {max_hops} (trace {self.trace_id})")  # fmt: skip

    def onward(self, self_id: str) -> Forwarded:
        """As this host passes the query on."""
        return Forwarded(self.hops + 1, self.trace_id, (*self.via, self_id))

    def headers(self) -> dict[str, str]:
        return {HOPS_HEADER: str(self.hops), TRACE_HEADER: self.trace_id,
                VIA_HEADER: ",".join(self.via)}  # fmt: skip

    def stored(self) -> dict[str, Any]:
        return {"hops": self.hops, "trace_id": self.trace_id, "via": list(self.via)}
