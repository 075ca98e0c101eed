"""Prometheus metrics of one orchestrator process (a registry per app, so tests can make many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Gauge("anvyl_tasks", "Tasks in the database by state", ["state"],
                           registry=self.registry)  # fmt: skip
        self.queue_depth = Gauge(
            "anvyl_queue_depth", "Tasks waiting to run", registry=self.registry
        )
        self.running = Gauge("anvyl_running_tasks", "Tasks this process is running",
                             registry=self.registry)  # fmt: skip
        self.finished = Counter("anvyl_tasks_finished", "Tasks this process finished", ["status"],
                                registry=self.registry)  # fmt: skip
        self.duration = Histogram("anvyl_task_duration_seconds", "Task run time", ["status"],
                                  buckets=_DURATION_BUCKETS, registry=self.registry)  # fmt: skip
        self.queue_wait = Histogram("anvyl_task_queue_wait_seconds", "Time from enqueue to start",
                                    buckets=_HTTP_BUCKETS, registry=self.registry)  # fmt: skip
        self.http_latency = Histogram("anvyl_http_request_duration_seconds", "HTTP request latency",
                                      ["method", "route", "status"], buckets=_HTTP_BUCKETS,
                                      registry=self.registry)  # fmt: skip

    def render(self, tasks_by_state: dict[str, int], queue_depth: int) -> bytes:
        """The exposition text, with the database-wide gauges read just before (every state
        named, those with no task at 0)."""
        for state, count in tasks_by_state.items():
            self.tasks.labels(state=state).set(count)
        self.queue_depth.set(queue_depth)
        return generate_latest(self.registry)
