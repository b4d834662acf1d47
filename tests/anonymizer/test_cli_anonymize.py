"""`amana anonymize IN... --out DIR`: files and folders, a summary, quarantine exit status."""

from __future__ import annotations

import stat
from pathlib import Path

import pydicom
import pytest
import typer
from typer.testing import CliRunner

from amana.cli_anonymize import anonymize
from tests.anonymizer.factory import Identity, ct_instance, to_bytes, uid

app = typer.Typer()
app.command()(anonymize)


def corpus(folder: Path, who: Identity) -> list[Path]:
    folder.mkdir(parents=True)
    study_uid, series_uid = uid(), uid()
    files = []
    for number in range(3):
        ds = ct_instance(who, study_uid, series_uid)
        ds.InstanceNumber = number + 1
        path = folder / f"{who.family}_{number}.dcm"  # identifying input names, on purpose
        path.write_bytes(to_bytes(ds))
        files.append(path)
    (folder / "notes.txt").write_text(f"{who.family} notes")
    odd = ct_instance(who)
    odd.BodyPartExamined = who.family.upper()
    (folder / "odd.dcm").write_bytes(to_bytes(odd))
    return files


def run(args: list[str], home: Path) -> tuple[int, str]:
    env = {"AMANA_HOME": str(home), "AMANA_KEY_FILE": str(home / "secrets" / "k.key")}
    result = CliRunner().invoke(app, args, env=env, terminal_width=200)
    return result.exit_code, result.output


@pytest.mark.ocr
def test_anonymize_folder_summary_and_exit_status(tmp_path: Path) -> None:
    """Rule: outputs go to OUT/<study>/<series>/<sop>.dcm built from new UIDs only; the
    summary lists archived and quarantined inputs with reasons; exit status is non-zero when
    anything was quarantined; a second run writes the same bytes."""
    who = Identity()
    inputs = corpus(tmp_path / "in", who)
    out = tmp_path / "out"
    code, output = run([str(tmp_path / "in"), "--out", str(out), "--create-key"], tmp_path)
    assert code == 1, output
    assert "archived" in output and "quarantined" in output
    assert "not_dicom" in output and "residual_phi" in output
    written = sorted(out.rglob("*.dcm"))
    assert len(written) == 3
    for path in written:
        relative = path.relative_to(out)
        assert all(part.removesuffix(".dcm").startswith("2.25.") for part in relative.parts)
        ds = pydicom.dcmread(path)
        assert str(relative) == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/" \
                                f"{ds.SOPInstanceUID}.dcm"
        assert who.family.encode() not in path.read_bytes()
    key = tmp_path / "secrets" / "k.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = {p: p.read_bytes() for p in written}
    code, _ = run([str(p) for p in inputs] + ["--out", str(out)], tmp_path)
    assert code == 0
    assert {p: p.read_bytes() for p in sorted(out.rglob("*.dcm"))} == before


def test_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    """Rule: without a key file and without --create-key, nothing is written."""
    inputs = corpus(tmp_path / "in", Identity())
    code, output = run([str(inputs[0]), "--out", str(tmp_path / "out")], tmp_path)
    assert code == 2
    assert "--create-key" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.ocr
def test_parallel_run_gives_the_same_files(tmp_path: Path) -> None:
    """Rule: outputs do not depend on --jobs, also when several inputs hold the same
    instance (a re-sent file) and are processed at the same time."""
    who = Identity()
    folder = tmp_path / "in"
    folder.mkdir()
    study_uid, series_uid = uid(), uid()
    for number in range(16):
        ds = ct_instance(who, study_uid, series_uid)
        ds.InstanceNumber = number + 1
        data = to_bytes(ds)
        (folder / f"a{number}.dcm").write_bytes(data)
        (folder / f"b{number}.dcm").write_bytes(data)  # the same instance, sent twice
    outputs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        code, output = run([str(folder), "--out", str(out), "--jobs", jobs, "--create-key"],
                           tmp_path)
        assert code == 0, output
        outputs[jobs] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")}
        assert not list(out.rglob("*.tmp"))
    assert len(outputs["1"]) == 16
    assert outputs["1"] == outputs["2"]
