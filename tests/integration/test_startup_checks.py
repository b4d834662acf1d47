"""A misconfigured Amana stops at once with one line naming the variable, never loops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from tests.support.harness import REPO, Amana, wait_until

EXIT_MISCONFIGURED = 2


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def _refused(amana: Amana, *command: str) -> list[str]:
    """Runs the command, expects the misconfiguration exit, returns its output lines."""
    result = amana.cli(*command, check=False, timeout=120)
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode == EXIT_MISCONFIGURED, output
    assert not any("Traceback" in line for line in output), output
    return output


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AMANA_DICOM_PORT", "abc"),
        ("AMANA_API_PORT", "70000"),
        ("AMANA_PROFILE", "nope"),
        ("AMANA_BROKER_URL", "nope://somewhere"),
        ("AMANA_WORKER_CONCURRENCY", "0"),
        # Goes into a queue name and a catalog column.
        ("AMANA_NODE", "rabat 1/primary"),
    ],
)
def test_run_with_a_bad_setting_exits_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    """Rule: `amana run` checks every setting and the active profile before it starts any
    process; a bad one ends it non-zero with one line naming the AMANA_* variable."""
    amana = Amana(tmp_path / "home", **{variable: value})
    output = _refused(amana, "run")
    naming = [line for line in output if variable in line]
    assert len(naming) == 1 and naming[0].startswith(f"amana: {variable}:"), output
    assert not any("Amana: DICOM" in line for line in output)  # no banner


@pytest.mark.parametrize("variable", ["AMANA_DICOM_PORT", "AMANA_API_PORT"])
def test_run_with_a_busy_port_exits_naming_it(
    tmp_path: Path, busy_port: int, variable: str
) -> None:
    """Rule: a port already in use stops `amana run` before the banner, with one line
    naming its variable, instead of a child restarted for ever."""
    amana = Amana(tmp_path / "home", **{variable: str(busy_port)})
    output = _refused(amana, "run")
    assert output == [
        f"amana: {variable}: cannot listen on 127.0.0.1:{busy_port}: " + ("Address already in use")
    ]


def test_worker_without_its_key_exits_naming_the_key_variable(tmp_path: Path) -> None:
    """Rule: a worker whose pseudonymization key is missing stops at once, naming
    AMANA_KEY_FILE (it never creates one: only `amana run` does)."""
    amana = Amana(tmp_path / "home")
    amana.cli("db", "upgrade")
    output = _refused(amana, "worker")
    assert (
        [line for line in output if "AMANA_" in line]
        == [line for line in output if line.startswith("amana: AMANA_KEY_FILE: ")]
        != []
    )


def _children(parent: int, component: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == parent and cmdline[-2:] == [component.encode(), b""]:
            found.append(int(entry.name))
    return found


def test_run_gives_up_on_a_child_that_keeps_dying_at_start(tmp_path: Path) -> None:
    """Rule: `amana run` restarts a dead child, but one that dies again and again right
    after it starts ends `amana run` with a non-zero exit instead of a restart loop."""
    amana = Amana(tmp_path / "home")
    amana.start("run")
    assert amana.proc is not None
    run = amana.proc
    killed: set[int] = set()
    try:
        while run.poll() is None and len(killed) < 10:
            wait_until(
                lambda: run.poll() is not None or bool(set(_children(run.pid, "api")) - killed),
                timeout=60,
                interval=0.1,
            )
            for pid in set(_children(run.pid, "api")) - killed:
                killed.add(pid)
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        code = run.wait(60)
    finally:
        amana.stop()
    assert code not in (0, None)
    assert 3 <= len(killed) < 10  # a long first start may reset the count once
    assert "times in a row" in amana.log_text()


def test_settings_errors_print_no_traceback_for_any_command(tmp_path: Path) -> None:
    """Rule: every entry point reads AMANA_* the same way: a bad value is one line naming
    the variable (here for a catalog command, which needs no port)."""
    result = subprocess.run(
        [sys.executable, "-m", "amana.cli", "catalog", "studies"],
        env={**Amana(tmp_path / "home").env, "AMANA_SWEEP_INTERVAL_S": "soon"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == EXIT_MISCONFIGURED
    assert result.stderr.splitlines() == [
        "amana: AMANA_SWEEP_INTERVAL_S: Input should be a valid number, unable to parse "
        "string as a number"
    ]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"AMANA_ARCHIVE_URL": "s3://bucket/archive"}, "AMANA_ARCHIVE_URL"),
        ({"AMANA_ARCHIVE_URL": "file://relative/archive"}, "AMANA_ARCHIVE_URL"),
        (
            {"AMANA_ARCHIVE_URL": "dicomweb+https://amana:made-up-pw@archive.example/dicom-web"},
            "AMANA_ARCHIVE_URL",
        ),
        (
            {
                "AMANA_ARCHIVE_URL": "dicomweb+https://archive.example/dicom-web",
                "AMANA_ARCHIVE_PASSWORD": "made-up-pw",
            },
            "AMANA_ARCHIVE_PASSWORD",
        ),
        (
            {
                "AMANA_ARCHIVE_URL": "dicomweb+https://archive.example/dicom-web",
                "AMANA_ARCHIVE_TOKEN": "made-up-pw",
                "AMANA_ARCHIVE_USER": "amana",
            },
            "AMANA_ARCHIVE_TOKEN",
        ),
    ],
)
def test_a_bad_archive_store_setting_stops_run_naming_it(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    """Rule: AMANA_ARCHIVE_URL and its credentials are checked before anything starts: an
    unknown scheme, a relative file URL, credentials in the URL or of two kinds end `amana
    run` with one line naming the variable, and the password is never printed."""
    amana = Amana(tmp_path / "home", **settings)
    output = _refused(amana, "run")
    assert [line for line in output if line.startswith(f"amana: {named}:")], output
    assert not any("made-up-pw" in line for line in output), output
