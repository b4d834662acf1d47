"""`amana run`: the receiver, a worker and the API as child processes of one command.

Children are restarted if they die, so a crash costs seconds; the catalog and the spool
keep every job across restarts. A child that keeps dying right after it starts (a setting
only it can trip over, a port taken after the checks) is not restarted for ever: after
QUICK_DEATHS_MAX such deaths in a row `amana run` stops everything and exits non-zero.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from amana.settings import Settings

log = logging.getLogger(__name__)

COMPONENTS = ("receive", "worker", "api")
# A child that exits within this time of its start died of its start-up.
QUICK_DEATH_S = 30.0
QUICK_DEATHS_MAX = 3
EXIT_CHILD_FAILING = 3


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    # Children must see exactly the settings this process resolved.
    env.update(
        {
            "AMANA_HOME": str(settings.home),
            "AMANA_NODE": settings.node,
            "AMANA_DATABASE_URL": settings.db_url,
            "AMANA_BROKER_URL": settings.broker,
            "AMANA_ARCHIVE_DIR": str(settings.archive_path),
            "AMANA_ARCHIVE_URL": settings.archive_store_url,
            "AMANA_SPOOL_DIR": str(settings.spool_path),
            "AMANA_QUARANTINE_DIR": str(settings.quarantine_path),
            "AMANA_KEY_FILE": str(settings.key_path),
            "AMANA_AUDIT_ANCHOR_FILE": str(settings.audit_anchor_path),
            "AMANA_PROFILE": settings.profile,
            "AMANA_PROFILES_DIR": str(settings.profiles_dir),
        }
    )
    env.setdefault("AMANA_ACCEPT_LOOPBACK", "true")
    return env


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)
    # Consecutive deaths within QUICK_DEATH_S of a start.
    quick_deaths: int = 0


def supervise(settings: Settings) -> int:
    env = child_env(settings)
    children = [Child(name) for name in COMPONENTS]
    stopping = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def start(child: Child) -> None:
        child.process = subprocess.Popen([sys.executable, "-m", "amana.cli", child.name], env=env)
        child.started_at = time.monotonic()

    for child in children:
        start(child)
    failed: Child | None = None
    while not stopping and failed is None:
        time.sleep(0.5)
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is None or stopping:
                continue
            child.restarts += 1
            quick = time.monotonic() - child.started_at < QUICK_DEATH_S
            child.quick_deaths = child.quick_deaths + 1 if quick else 0
            if child.quick_deaths >= QUICK_DEATHS_MAX:
                log.critical(
                    "%s exited with %s, %d times in a row within %.0f s of starting; "
                    "stopping (see its messages above)",
                    child.name,
                    code,
                    child.quick_deaths,
                    QUICK_DEATH_S,
                )
                failed = child
                break
            delay = 2.0**child.quick_deaths if quick else 1.0
            log.error("%s exited with %s; restarting in %.0f s", child.name, code, delay)
            time.sleep(delay)
            start(child)
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + 20
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
    return EXIT_CHILD_FAILING if failed is not None else 0
