"""The web catalog (placeholder until the pages land)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter


def build_web(state: Any) -> APIRouter:
    return APIRouter()
