"""One router per area of the API; `archive.api.app.create_app` includes them all."""

from fastapi import APIRouter

from archive.api.routers import (
    audit,
    catalog,
    datasets,
    health,
    nodes,
    profiles,
    quarantine,
    reports,
    sources,
    tokens,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    catalog.router,
    reports.router,
    nodes.router,
    quarantine.router,
    audit.router,
    profiles.router,
    sources.router,
    tokens.router,
    users.router,
    datasets.router,
)

__all__ = ["ROUTERS"]
