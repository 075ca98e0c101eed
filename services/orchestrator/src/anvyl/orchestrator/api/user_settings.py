"""User settings routes: show, replace, change, reset to defaults, history (see README: Settings)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query

from anvyl.orchestrator.api.auth import key_fingerprint, require_api_key
from anvyl.orchestrator.api.schemas import MAX_OFFSET, Problem
from anvyl.orchestrator.api.services import Services, services
from anvyl.orchestrator.user_settings.models import (
    SettingsChange,
    SettingsPatch,
    SettingsValues,
    UserSettings,
)
from anvyl.orchestrator.user_settings.service import SettingsProblem

router = APIRouter(prefix="/settings", tags=["settings"], dependencies=[Depends(require_api_key)],
                   responses={401: {"model": Problem}})  # fmt: skip
SvcDep = Annotated[Services, Depends(services)]
KeyDep = Annotated[str, Depends(key_fingerprint)]
T = TypeVar("T")


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except SettingsProblem as exc:
        raise HTTPException(exc.status, exc.detail) from None


@router.get("", response_model=UserSettings)
async def get_settings(svc: SvcDep) -> UserSettings:
    """The default user's settings (defaults where never set)."""
    return await svc.user_settings.current()


@router.put("", response_model=UserSettings)
async def replace_settings(body: SettingsValues, svc: SvcDep, key: KeyDep) -> UserSettings:
    """All settings at once: a field left out goes back to its default."""
    return await _answer(svc.user_settings.replace(body, key))


@router.patch("", response_model=UserSettings)
async def change_settings(body: SettingsPatch, svc: SvcDep, key: KeyDep) -> UserSettings:
    """Some settings: a field left out stays as it is; null puts it back to its default."""
    return await _answer(svc.user_settings.patch(body, key))


@router.delete("", response_model=UserSettings)
async def reset_settings(svc: SvcDep, key: KeyDep) -> UserSettings:
    """Every setting back to its default (the change is recorded like any other)."""
    return await _answer(svc.user_settings.reset(key))


@router.get("/history", response_model=list[SettingsChange])
async def settings_history(
    svc: SvcDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[SettingsChange]:
    """Every change, newest first: when, which field, from what to what, through which key."""
    return await svc.user_settings.history(limit=limit, offset=offset)
