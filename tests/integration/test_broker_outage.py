"""A broker outage delays jobs, never stops ingestion, and ends without a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.harness import Amana, storescu, wait_until
from tests.support.services import ThrowawayRedis
from tests.support.study_factory import identifying_strings, make_study


def _health(amana: Amana) -> dict[str, object] | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{amana.api_port}/health", timeout=5)
    except httpx.HTTPError:
        return None
    return dict(answer.json()) if answer.is_success else None


def _jobs(amana: Amana) -> dict[str, int]:
    health = _health(amana)
    return dict(health["jobs"]) if health else {}  # type: ignore[call-overload]


@pytest.mark.services
def test_jobs_received_during_an_outage_are_processed_once_the_broker_returns(
    tmp_path: Path,
) -> None:
    """Rule: instances received while Redis is unreachable get Success and job rows; once
    Redis is back (empty, as after a restart) every job is processed by the running
    processes, well before the stale-job timeout; /health and the receiver's log report the
    broker's state once per change, and the log names no patient."""
    redis = ThrowawayRedis()  # not started: the broker is down from the beginning
    amana = Amana(
        tmp_path / "home",
        AMANA_BROKER_URL=redis.url,
        AMANA_RECEIVER_PROCESSES="1",
        # Far beyond the test: only the recovery itself can send these jobs.
        AMANA_STALE_AFTER_S="3600",
    )
    try:
        amana.start("run")
        study = make_study(
            tmp_path / "pacs", layout=[("CT_small.dcm", "ct"), ("MR_small.dcm", "mr")]
        )
        assert storescu(amana.dicom_port, study.files).returncode == 0
        wait_until(lambda: _jobs(amana).get("RECEIVED") == 2, timeout=60)
        wait_until(lambda: (_health(amana) or {}).get("broker") == "down", timeout=30)

        redis.start()
        wait_until(lambda: _jobs(amana).get("DONE") == 2, timeout=180)
        wait_until(lambda: (_health(amana) or {}).get("broker") == "up", timeout=30)
        log = amana.log_text()
        assert log.count("broker unreachable") == 1
        assert log.count("broker reachable again") == 1
        for value in identifying_strings(study):
            assert value.decode() not in log
    finally:
        amana.stop()
        redis.destroy()


def _queued_ids(url: str) -> list[int]:
    import base64
    import json

    import redis as redis_client

    from amana.celery_app import node_queue

    ids = []
    for raw in redis_client.Redis.from_url(url).lrange(node_queue("node-t"), 0, -1):
        message = json.loads(raw)
        body = message["body"]
        if message["properties"]["body_encoding"] == "base64":
            body = base64.b64decode(body)
        ids += json.loads(body)[0][0]
    return sorted(ids)


@pytest.mark.services
def test_publisher_sends_what_each_outage_held_once_the_broker_is_back() -> None:
    """Rule: the publisher shared by the receiver and `amana import` survives any number of
    broker outages: ids submitted while Redis is down are published once it is back, with
    no restart, and each change of state is logged once."""
    import logging

    from amana.celery_app import make_celery, node_queue
    from amana.publisher import Publisher
    from amana.settings import Settings

    redis = ThrowawayRedis()
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("amana.broker").addHandler(handler)
    settings = Settings(broker_url=redis.url, node="node-t")
    publisher = Publisher(make_celery(settings), queue=node_queue("node-t"), probe_every_s=0.2)
    try:
        for outage in range(3):
            if outage:
                redis.stop()  # wiped: each round starts from an empty broker
            ids = list(range(outage * 100, outage * 100 + 40))
            publisher.submit(ids)
            wait_until(lambda: publisher.unsent >= 40, timeout=60, interval=0.05)
            redis.start()
            wait_until(lambda: _queued_ids(redis.url) == ids, timeout=60)  # noqa: B023
            assert publisher.unsent == 0
    finally:
        publisher.close()
        logging.getLogger("amana.broker").removeHandler(handler)
        redis.destroy()
    assert sum("broker unreachable" in r for r in records) == 3
    assert sum("broker reachable again" in r for r in records) == 3
