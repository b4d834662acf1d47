"""Celery wiring. The broker carries job ids only; the catalog holds the state."""

from __future__ import annotations

from typing import Any

from celery import Celery

from amana import queue_transport
from amana.settings import Settings

# Kept registered for messages published by earlier versions (one job id per message).
PROCESS_JOB = "amana.process_job"
# One message carries a small batch of job ids, so the worker claims and catalogs them in a
# few round trips instead of a dozen per instance.
PROCESS_JOBS = "amana.process_jobs"
# The prefix of every node's queue; messages published before nodes sit on it unread (the
# catalog's sweeper re-sends their jobs to their node's queue).
QUEUE = "amana.jobs"


def node_queue(node: str) -> str:
    """The queue of one ingest node: only its workers consume it, since only they can read
    the originals in its spool."""
    return f"{QUEUE}.{node}"


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    url = settings.broker
    if url.startswith(("sqla+sqlite", f"{queue_transport.ALIAS}+sqlite")):
        # The embedded queue: a SQLite file under AMANA_HOME shared by the receiver and the
        # workers; a busy timeout keeps concurrent publishers from failing.
        return {"connect_args": {"timeout": 30}, "polling_interval": 0.05}
    if url.startswith(("redis://", "rediss://")):
        # A message not acknowledged within this time is redelivered by Redis; keep it above
        # the longest job so a slow job is not run twice in parallel, and let the catalog's
        # sweeper handle the rest.
        return {"visibility_timeout": int(max(settings.stale_after_s * 2, 3600))}
    return {}


def broker_url(settings: Settings) -> str:
    url = settings.broker
    if url.startswith("sqla+sqlite"):
        queue_transport.register()
        return queue_transport.ALIAS + url[len("sqla") :]
    return url


def make_celery(settings: Settings) -> Celery:
    app = Celery("amana", broker=broker_url(settings), set_as_current=False)
    app.conf.update(
        task_default_queue=node_queue(settings.node),
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A killed worker must not swallow its job: acknowledge after the work, and hand the
        # message back if the process running it dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


UNSAFE_SETTINGS = ("task_acks_late", "task_reject_on_worker_lost")


def check_safe(app: Celery) -> None:
    """Refuse to run a worker that could lose a job when it dies."""
    for name in UNSAFE_SETTINGS:
        if not app.conf.get(name):
            raise RuntimeError(f"unsafe Celery setting: {name} must be true")
    if int(app.conf.get("worker_prefetch_multiplier", 4)) != 1:
        raise RuntimeError("unsafe Celery setting: worker_prefetch_multiplier must be 1")
