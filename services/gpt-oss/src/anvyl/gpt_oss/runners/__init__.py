"""Registry of in-process model runners: ``register_runner(name, cls)`` / ``get_runner(name)``.

The built-in ``mlx`` and ``vllm`` runners are registered by import path so that neither engine is
imported until a runner of that kind is asked for.
"""

from __future__ import annotations

import importlib

from anvyl.gpt_oss.runners.base import (
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
    LocalRunner,
    RunnerUnavailable,
)

_RUNNERS: dict[str, type[LocalRunner] | str] = {
    "mlx": "anvyl.gpt_oss.runners.mlx_runner:MlxRunner",
    "vllm": "anvyl.gpt_oss.runners.vllm_runner:VllmRunner",
}


def register_runner(name: str, cls: type[LocalRunner]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, LocalRunner)):
        raise TypeError(f"runner {name!r} must be a LocalRunner subclass, got {cls!r}")
    _RUNNERS[name] = cls


def get_runner(name: str) -> type[LocalRunner]:
    try:
        entry = _RUNNERS[name]
    except KeyError:
        known = ", ".join(sorted(_RUNNERS))
        raise KeyError(f"unknown runner {name!r}; registered runners: {known}") from None
    if isinstance(entry, str):
        module_name, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(entry, type)
        _RUNNERS[name] = entry
    return entry


def registered_runners() -> list[str]:
    return sorted(_RUNNERS)


__all__ = [
    "GenerationChunk",
    "GenerationRequest",
    "GenerationResult",
    "LocalRunner",
    "RunnerUnavailable",
    "get_runner",
    "register_runner",
    "registered_runners",
]
