"""Per-source profiles end to end: a real PACS peer (dcmtk storescu) sends to a running Amana,
and the catalog records the profile and region of the source it came from."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from anonymizer.engine import load_profile
from tests.paths import REPO_ROOT
from tests.support.harness import Amana, echoscu, storescu, wait_until
from tests.support.study_factory import make_study

PROFILES = REPO_ROOT / "profiles"
# storescu's calling AE title (tests.support.harness)
PACS = "TESTPACS"


def _study(amana: Amana, study_count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def arrived() -> bool:
        rows[:] = amana.studies()
        return len(rows) >= study_count

    wait_until(arrived, timeout=120)
    return rows


def _steward_tokens(amana: Amana) -> tuple[str, str]:
    """Two stewards who are two people: four eyes counts users, not tokens."""
    tokens = []
    for name in ("alice-steward", "bob-steward"):
        amana.cli("user", "add", name, "--role", "steward")
        tokens.append(amana.cli("token", "create", "--user", name).stdout.strip())
    return tokens[0], tokens[1]


@pytest.fixture(params=["embedded", pytest.param("postgres+redis", marks=pytest.mark.services)])
def amana(request: pytest.FixtureRequest, tmp_path: Path) -> Amana:
    env = {"AMANA_PROFILE_REFRESH_S": "1"}
    if request.param == "postgres+redis":
        env["AMANA_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env["AMANA_BROKER_URL"] = request.getfixturevalue("redis_url")
    instance = Amana(tmp_path / "home", **env).start("run")
    request.addfinalizer(instance.stop)
    return instance


def test_a_sources_profile_and_region_are_what_its_studies_get(
    amana: Amana, tmp_path: Path
) -> None:
    """Rules: a source registered with `--profile dicom-basic --region Souss-Massa` has its
    studies archived under that profile's active version and that region, not the default
    profile and the header's region; an unknown region is refused at `sources add`;
    activating a new version of dicom-basic (not AMANA_PROFILE) changes what that source's
    next study gets within the refresh interval; a disabled source is refused at
    association."""
    refused = amana.cli(
        "sources", "add", "CHU_ATL", "10.1.1.1", "--region", "Atlantis", check=False
    )
    assert refused.returncode == 1 and "unknown region" in refused.stderr
    refused = amana.cli(
        "sources", "add", "CHU_ATL", "10.1.1.1", "--profile", "no-such-profile", check=False
    )
    assert refused.returncode == 1 and "unknown profile" in refused.stderr
    amana.cli(
        "sources",
        "add",
        PACS,
        "127.0.0.1",
        "--profile",
        "dicom-basic",
        "--region",
        "Souss-Massa",
    )

    first = make_study(tmp_path / "pacs1", layout=[("CT_small.dcm", "ct")] * 2)
    assert storescu(amana.dicom_port, first.files).returncode == 0
    [study] = _study(amana, 1)
    basic = load_profile("dicom-basic", PROFILES).version
    assert (study["profile"], study["profile_version"], study["region"]) == (
        "dicom-basic",
        basic,
        "Souss-Massa",
    )
    assert study["instances"] == 2

    alice, bob = _steward_tokens(amana)
    text = (
        (PROFILES / "dicom-basic.yaml")
        .read_text(encoding="utf-8")
        .replace("  PS3.15 Basic Application", "  Revised. PS3.15 Basic Application", 1)
    )
    with tempfile.TemporaryDirectory() as tmp:
        revised_file = Path(tmp) / "dicom-basic.yaml"
        revised_file.write_text(text, encoding="utf-8")
        out = amana.cli("profile", "propose", str(revised_file), "--token", alice).stdout
    version = out.split(" version ")[1].split()[0]
    assert f"changes against {basic}: 1" in out
    assert "APPROVED" in amana.cli("profile", "approve", version, "--token", bob).stdout
    amana.cli("profile", "activate", version, "--token", alice)

    second = make_study(tmp_path / "pacs2", layout=[("CT_small.dcm", "ct")])
    assert storescu(amana.dicom_port, second.files).returncode == 0
    rows = _study(amana, 2)
    by_version = {row["profile_version"]: row for row in rows}
    assert set(by_version) == {basic, version}
    assert by_version[version]["region"] == "Souss-Massa"

    amana.cli("sources", "disable", PACS)
    assert not echoscu(amana.dicom_port, calling_ae=PACS)
    amana.cli("sources", "enable", PACS)
    assert echoscu(amana.dicom_port, calling_ae=PACS)
