"""What an administrator can read: one line per association, refusals with who asked, a
failed C-STORE's Error Comment, quarantines with their reason; never a patient."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from sqlalchemy.orm import Session, sessionmaker

from archive.work.pipeline import JobResult, process_job
from tests.support.harness import Amana, echoscu, storescu, wait_until
from tests.support.pipeline_helpers import enqueue, worker_context
from tests.support.study_factory import identifying_strings, make_study

# Made up, and planted in the broken payload: it must reach neither a log nor a comment.
PLANTED = b"Inventee^Zahra^PLANTED-ID-90417"


def _broken_file(directory: Path) -> Path:
    """A Part 10 file whose data set is garbage around a patient's name."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = directory / "broken.dcm"
    with path.open("wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, meta, enforce_standard=True)  # type: ignore[arg-type]
        fh.write(b"\x10\x00\x10\x00PN\x1f\x00" + PLANTED + b"\xff\xfe" * 7)
    return path


def _send(port: int, files: list[Path], calling_ae: str) -> list[pydicom.Dataset]:
    """One association, each file's bytes sent as they are; the full C-STORE responses."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="AMANA")
    assert assoc.is_established
    try:
        return [assoc.send_c_store(path) for path in files]
    finally:
        assoc.release()
        _config.STORE_SEND_CHUNKED_DATASET = previous


def _secrets(study_values: list[bytes]) -> list[str]:
    return [v.decode() for v in [*study_values, PLANTED, *PLANTED.split(b"^")]]


def test_receiver_logs_each_association_and_refusal_and_comments_each_failure(
    tmp_path: Path,
) -> None:
    """Rule: the receiver logs one line per association end (calling AE, address, instances
    received, refused, failed) and every refused association with its AE title and address
    (refused by the source check or by the DICOM layer); a 0xC000 answer carries an Error
    Comment made of a code and a class name; neither the log nor the comment holds a
    patient's name or ID."""
    amana = Amana(tmp_path / "home", AMANA_ACCEPT_LOOPBACK="false", AMANA_RECEIVER_PROCESSES="1")
    amana.cli("db", "upgrade")
    amana.cli("sources", "add", "TESTPACS", "127.0.0.1")
    amana.cli("sources", "add", "OTHERPACS", "127.0.0.1")
    amana.start("receive", "--no-sweeper")
    study = make_study(tmp_path / "pacs", layout=[("CT_small.dcm", "ct"), ("CT_small.dcm", "ct")])
    try:
        assert storescu(amana.dicom_port, study.files).returncode == 0
        answers = _send(amana.dicom_port, [study.files[0], _broken_file(tmp_path)], "OTHERPACS")
        assert not echoscu(amana.dicom_port, calling_ae="STRANGER")
        assert not echoscu(amana.dicom_port, ae_title="ELSEWHERE", calling_ae="TESTPACS")
        wait_until(lambda: "OTHERPACS (127.0.0.1) released" in amana.log_text(), timeout=30)
        wait_until(lambda: "STRANGER (127.0.0.1) refused" in amana.log_text(), timeout=30)
        wait_until(lambda: "called AE title ELSEWHERE" in amana.log_text(), timeout=30)
    finally:
        amana.stop()

    assert [int(a.Status) for a in answers] == [0x0000, 0xC000]
    comment = str(answers[1].ErrorComment)
    assert re.fullmatch(r"unparseable(: [A-Za-z]+)?", comment), comment
    log = amana.log_text()
    assert "association TESTPACS (127.0.0.1) released: 2 received, 0 refused, 0 failed" in log
    assert "association OTHERPACS (127.0.0.1) released: 1 received, 1 refused, 0 failed" in log
    assert "C-STORE from OTHERPACS (127.0.0.1) refused" in log
    assert "association TESTPACS (127.0.0.1) refused: called AE title ELSEWHERE" in log
    assert len(re.findall(r"association \S+ \(\S+\) (released|aborted):", log)) == 2
    for secret in _secrets(identifying_strings(study)):
        assert secret not in log and secret not in comment


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_quarantine_is_logged_with_its_reason_code_only(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rule: the worker logs each quarantine with the job id and its reason code, and no
    value taken from the instance."""
    ctx = worker_context(sessions, tmp_path)
    job_id = enqueue(ctx, _broken_file(tmp_path))
    with caplog.at_level(logging.INFO):
        assert process_job(ctx, job_id) is JobResult.QUARANTINED
    lines = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(lines) == 1
    assert re.fullmatch(rf"job {job_id} quarantined: [a-z_]+", lines[0]), lines
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in _secrets([]):
        assert secret not in everything
