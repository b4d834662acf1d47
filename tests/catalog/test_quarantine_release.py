"""`amana quarantine release N --to DIR` writes a new private file and never follows a link
planted in DIR, nor DIR itself when it is a link (issue 14.6)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from amana.cli_quarantine import quarantine_app
from archive.catalog.models import QuarantineEntry, QuarantineStatus
from tests.catalog.conftest import audit_events, hold, run_cli


@pytest.fixture()
def qdir(tmp_path: Path) -> Path:
    return tmp_path / "quarantine"


@pytest.fixture()
def env(db_url: str, tmp_path: Path, qdir: Path) -> dict[str, str]:
    return {
        "AMANA_DATABASE_URL": db_url,
        "AMANA_HOME": str(tmp_path / "home"),
        "AMANA_QUARANTINE_DIR": str(qdir),
    }


def _status(sessions: sessionmaker[Session], entry_id: int) -> QuarantineStatus:
    with sessions() as session:
        return session.get_one(QuarantineEntry, entry_id).status


def test_release_writes_a_new_file_only_its_owner_reads(
    env: dict[str, str], sessions: sessionmaker[Session], qdir: Path, tmp_path: Path
) -> None:
    """Rule: the released original is a new file, mode 0600, with the held bytes; the held
    copy is gone and the entry RELEASED."""
    entry = hold(sessions, qdir, "held-1")
    out_dir = tmp_path / "out"
    old_umask = os.umask(0)  # a permissive umask must not widen the file
    try:
        run_cli(quarantine_app, ["release", str(entry), "--to", str(out_dir)], env)
    finally:
        os.umask(old_umask)
    released = out_dir / f"quarantine-{entry}.dcm"
    assert released.read_bytes() == b"original"
    assert stat.S_IMODE(released.lstat().st_mode) == 0o600
    assert not (qdir / "held-1").exists()
    assert _status(sessions, entry) is QuarantineStatus.RELEASED


def test_a_symlink_planted_in_the_folder_is_not_followed(
    env: dict[str, str], sessions: sessionmaker[Session], qdir: Path, tmp_path: Path
) -> None:
    """Rule: a link named like the released file (dangling or not) is refused: nothing is
    written where it points, the original stays held, and the refusal is audited."""
    entry = hold(sessions, qdir, "held-2")
    out_dir, elsewhere = tmp_path / "out", tmp_path / "other-user"
    out_dir.mkdir()
    elsewhere.mkdir()
    target = elsewhere / "stolen.dcm"
    (out_dir / f"quarantine-{entry}.dcm").symlink_to(target)
    run_cli(quarantine_app, ["release", str(entry), "--to", str(out_dir)], env, code=1)
    assert not target.exists()
    # The same with a link to an existing file another user could read.
    target.write_bytes(b"")
    run_cli(quarantine_app, ["release", str(entry), "--to", str(out_dir)], env, code=1)
    assert target.read_bytes() == b""
    assert (qdir / "held-2").read_bytes() == b"original"
    assert _status(sessions, entry) is QuarantineStatus.HELD
    refused = [e for e in audit_events(sessions) if e.object_id == str(entry)]
    assert len(refused) == 2 and all('"refused":"unsafe_destination"' in e.detail for e in refused)


def test_a_folder_that_is_a_symlink_is_refused(
    env: dict[str, str], sessions: sessionmaker[Session], qdir: Path, tmp_path: Path
) -> None:
    """Rule: when DIR itself is a link, nothing is written in the folder it points to."""
    entry = hold(sessions, qdir, "held-3")
    elsewhere = tmp_path / "other-user"
    elsewhere.mkdir()
    link = tmp_path / "out-link"
    link.symlink_to(elsewhere, target_is_directory=True)
    run_cli(quarantine_app, ["release", str(entry), "--to", str(link)], env, code=1)
    assert list(elsewhere.iterdir()) == []
    assert _status(sessions, entry) is QuarantineStatus.HELD
    assert (qdir / "held-3").exists()
