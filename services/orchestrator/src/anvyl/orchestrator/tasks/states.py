"""A task's states and the fixed events every task has."""

from __future__ import annotations

from datetime import datetime
from typing import Any

QUEUED, RUNNING, WAITING_APPROVAL = "queued", "running", "waiting_approval"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
ACTIVE_STATES = (RUNNING, WAITING_APPROVAL)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
ALL_STATES = (QUEUED, RUNNING, WAITING_APPROVAL, SUCCEEDED, FAILED, CANCELLED)
RESULT_EVENT = "result"  # the last event of every task
QUEUED_EVENT_DATA = {"status": QUEUED}  # the first event of every task

Event = tuple[str, dict[str, Any], datetime]  # (type, data, when it happened)
