"""The objects one orchestrator process runs on, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from anvyl.orchestrator.agents.service import AgentService
from anvyl.orchestrator.db.engine import Database
from anvyl.orchestrator.metrics import Metrics
from anvyl.orchestrator.settings import Settings
from anvyl.orchestrator.tasks.bus import EventBus
from anvyl.orchestrator.tasks.execution import TaskExecutor
from anvyl.orchestrator.tasks.queue import TaskQueue
from anvyl.orchestrator.tasks.store import TaskStore
from anvyl.orchestrator.user_settings.service import UserSettingsService
from anvyl.orchestrator.workspaces.manager import WorkspaceManager


@dataclass
class Services:
    settings: Settings
    db: Database
    store: TaskStore
    bus: EventBus
    metrics: Metrics
    workspaces: WorkspaceManager
    executor: TaskExecutor
    queue: TaskQueue
    agents: AgentService
    user_settings: UserSettingsService


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
