"""The embedded queue (amana/queue_transport.py) delivers every message once, in send order,
keeps only the messages still waiting, and a poll it skips never hides a message."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection
from kombu.simple import SimpleQueue

from amana import queue_transport

QUEUE = "amana.jobs.test-node"


def _connect(path: Path) -> Connection:
    queue_transport.register()
    return Connection(f"{queue_transport.ALIAS}+sqlite:///{path}")


@pytest.fixture()
def queue_file(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture()
def consumer(queue_file: Path) -> Iterator[SimpleQueue]:
    with _connect(queue_file) as conn:
        queue = conn.SimpleQueue(QUEUE)
        yield queue
        queue.close()


def _put(queue_file: Path, bodies: list[int]) -> None:
    # Another connection, as a receiver process publishing.
    with _connect(queue_file) as conn:
        queue = conn.SimpleQueue(QUEUE)
        for body in bodies:
            queue.put(body)
        queue.close()


def _take_all(queue: SimpleQueue) -> list[int]:
    taken = []
    while True:
        try:
            message = queue.get_nowait()
        except queue.Empty:
            return taken
        message.ack()
        taken.append(int(message.payload))


def _rows(queue_file: Path) -> int:
    with sqlite3.connect(queue_file) as conn:
        return int(conn.execute("SELECT count(*) FROM kombu_message").fetchone()[0])


def test_every_message_is_taken_once_in_send_order_and_only_waiting_ones_are_kept(
    queue_file: Path, consumer: SimpleQueue
) -> None:
    """Rule: nothing lost, nothing duplicated: each message published is delivered exactly
    once, oldest first, and a taken message leaves the file (a poll reads waiting
    messages only, however many were consumed before)."""
    _put(queue_file, list(range(40)))
    first = [int(consumer.get_nowait().payload) for _ in range(15)]
    assert _rows(queue_file) == 25
    rest = _take_all(consumer)
    assert first + rest == list(range(40))
    assert _rows(queue_file) == 0


def test_a_poll_after_an_empty_one_sees_a_message_committed_in_between(
    queue_file: Path, consumer: SimpleQueue
) -> None:
    """Rule: skipping a poll while nothing was committed never delays a message: the first
    poll after another process published finds it, with no wait in between."""
    for round_ in range(5):
        assert _take_all(consumer) == []
        assert _take_all(consumer) == []  # skipped: nothing committed since
        _put(queue_file, [round_])
        assert int(consumer.get_nowait().payload) == round_


def test_two_consumers_never_take_the_same_message(queue_file: Path) -> None:
    """Rule: two workers polling one queue file split its messages: each exactly once."""
    _put(queue_file, list(range(30)))
    with _connect(queue_file) as one, _connect(queue_file) as two:
        queues = [one.SimpleQueue(QUEUE), two.SimpleQueue(QUEUE)]
        taken: list[int] = []
        done = [False, False]
        while not all(done):
            for index, queue in enumerate(queues):
                try:
                    message = queue.get_nowait()
                except queue.Empty:
                    done[index] = True
                    continue
                message.ack()
                taken.append(int(message.payload))
        for queue in queues:
            queue.close()
    assert sorted(taken) == list(range(30))


def test_messages_consumed_by_kombus_own_transport_are_removed_never_delivered(
    queue_file: Path,
) -> None:
    """Rule: a queue file written before this transport deleted what it took (kombu marked
    consumed messages invisible) delivers its waiting messages once and drops the rest."""
    _put(queue_file, [1, 2, 3])
    with sqlite3.connect(queue_file) as conn:
        # As kombu's consume left them: the first two taken, still in the file.
        conn.execute("UPDATE kombu_message SET visible = 0 WHERE id IN (1, 2)")
    with _connect(queue_file) as conn:
        queue = conn.SimpleQueue(QUEUE)
        assert _take_all(queue) == [3]
        queue.close()
    assert _rows(queue_file) == 0
