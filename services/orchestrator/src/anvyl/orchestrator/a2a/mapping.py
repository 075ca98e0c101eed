"""Anvyl tasks and their events as A2A protocol objects (the SDK's protobuf types).

An A2A task is an Anvyl task with the same id; its context id is the task's workspace (tasks of
one repository or agent share it) or, without one, the task's own id. The task's result is its
`result` artifact; a failure or cancellation is the final status message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from anvyl.orchestrator.db.tables import Task as TaskRow
from anvyl.orchestrator.db.tables import TaskEvent
from anvyl.orchestrator.tasks.bus import Token
from anvyl.orchestrator.tasks.states import (
    CANCELLED,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    WAITING_APPROVAL,
)

# A task waiting for a person's approval is still working as far as an A2A client can tell: it
# cannot give that approval through A2A (the person does, with `anvyl tasks approve`).
STATES: dict[str, TaskState] = {
    QUEUED: TaskState.TASK_STATE_SUBMITTED,
    RUNNING: TaskState.TASK_STATE_WORKING,
    WAITING_APPROVAL: TaskState.TASK_STATE_WORKING,
    SUCCEEDED: TaskState.TASK_STATE_COMPLETED,
    FAILED: TaskState.TASK_STATE_FAILED,
    CANCELLED: TaskState.TASK_STATE_CANCELED,
}
RESULT_ARTIFACT = "result"


def context_id(task: TaskRow) -> str:
    return task.workspace_id or task.id


def _timestamp(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    # Through JSON: values the store keeps (datetimes as strings, nested lists) become plain JSON.
    json_format.ParseDict(json.loads(json.dumps(data, default=str)), struct)
    return struct


def agent_message(task_id: str, ctx: str, message_id: str, text: str) -> Message:
    return Message(message_id=message_id, context_id=ctx, task_id=task_id, role=Role.ROLE_AGENT,
                   parts=[Part(text=text)])  # fmt: skip


def _status(task: TaskRow) -> TaskStatus:
    status = TaskStatus(state=STATES.get(task.status, TaskState.TASK_STATE_UNSPECIFIED))
    when = _timestamp(task.finished_at or task.started_at or task.created_at)
    if when is not None:
        status.timestamp.CopyFrom(when)
    text = task.result if task.status == SUCCEEDED else task.error
    if task.status in FINAL_STATES and text:
        status.message.CopyFrom(agent_message(task.id, context_id(task), f"{task.id}-final", text))
    elif task.status == WAITING_APPROVAL:
        status.message.CopyFrom(agent_message(
            task.id, context_id(task), f"{task.id}-approval",
            f"waiting for a person's approval of a tool call: anvyl tasks approve|reject {task.id}",
        ))  # fmt: skip
    return status


def to_a2a_task(task: TaskRow) -> Task:
    ctx = context_id(task)
    query = Message(message_id=f"{task.id}-query", context_id=ctx, task_id=task.id,
                    role=Role.ROLE_USER, parts=[Part(text=task.query)])  # fmt: skip
    a2a_task = Task(id=task.id, context_id=ctx, status=_status(task), history=[query])
    if task.status == SUCCEEDED and task.result is not None:
        a2a_task.artifacts.append(result_artifact(task.result))
    a2a_task.metadata.CopyFrom(_struct({
        "anvyl_status": task.status, "workspace_id": task.workspace_id, "attempts": task.attempts,
        "metadata": task.meta or {},
    }))  # fmt: skip
    return a2a_task


def result_artifact(text: str) -> Artifact:
    return Artifact(artifact_id=RESULT_ARTIFACT, name="result", parts=[Part(text=text)])


def step_update(task_id: str, ctx: str, event: TaskEvent) -> TaskStatusUpdateEvent:
    """A stored step (status change, model call, tool call, ...) as a working status update whose
    message carries the step as data, the way GET /tasks/{id}/events shows it."""
    state = TaskState.TASK_STATE_WORKING
    if event.type == "status":
        state = STATES.get(str(event.data.get("status")), state)
    step = {"seq": event.seq, "type": event.type, "data": event.data}
    data = struct_pb2.Value()
    json_format.ParseDict(json.loads(json.dumps(step, default=str)), data)
    message = Message(message_id=f"{task_id}-{event.seq}", context_id=ctx, task_id=task_id,
                      role=Role.ROLE_AGENT, parts=[Part(data=data)])  # fmt: skip
    return TaskStatusUpdateEvent(task_id=task_id, context_id=ctx,
                                 status=TaskStatus(state=state, message=message))  # fmt: skip


def token_update(task_id: str, ctx: str, token: Token) -> TaskStatusUpdateEvent:
    """The model's text as it streams: a working status update whose message is the piece of text
    (metadata: the model turn `step` and `kind`; `discard`: drop that turn's text, it is asked
    again). Not an artifact: the task's artifacts are its result alone, in the stream as in GetTask."""
    message = agent_message(task_id, ctx, f"{task_id}-t{token.after_seq}-{token.step}",
                            "" if token.kind == "discard" else token.text)  # fmt: skip
    message.metadata.CopyFrom(_struct({"kind": token.kind, "step": token.step}))
    return TaskStatusUpdateEvent(task_id=task_id, context_id=ctx,
                                 status=TaskStatus(state=TaskState.TASK_STATE_WORKING,
                                                   message=message))  # fmt: skip


def final_updates(task: TaskRow) -> list[TaskArtifactUpdateEvent | TaskStatusUpdateEvent]:
    """The end of a stream: the result artifact (when there is one), then the final status."""
    ctx = context_id(task)
    updates: list[TaskArtifactUpdateEvent | TaskStatusUpdateEvent] = []
    if task.status == SUCCEEDED and task.result is not None:
        updates.append(TaskArtifactUpdateEvent(task_id=task.id, context_id=ctx,
                                               artifact=result_artifact(task.result),
                                               last_chunk=True))  # fmt: skip
    updates.append(TaskStatusUpdateEvent(task_id=task.id, context_id=ctx, status=_status(task)))
    return updates
