"""The chaos run, small: faults while a PACS sends, and nothing lost or duplicated."""

from __future__ import annotations

import pytest

from tests.support.chaos import main

pytestmark = pytest.mark.services


def test_nothing_lost_or_duplicated_under_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """Rule: every acknowledged instance ends archived or quarantined, exactly once, while the
    worker is SIGKILLed twice, Redis restarts empty, Redis stops for a while and comes back
    empty, PostgreSQL stops and the receiver is SIGKILLed mid-association (see
    tests/support/chaos.py; 2,000 instances and five receiver kills and a full spool there,
    150 here)."""
    code = main(
        [
            "--instances",
            "150",
            "--studies",
            "5",
            "--batch",
            "10",
            "--send-s",
            "20",
            "--pg-outage-s",
            "5",
            "--broker-outage-s",
            "6",
            "--receiver-kills",
            "1",
            "--disk-full-s",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert "lost          0" in out, out
    assert "duplicated    0" in out, out
    assert code == 0, out
