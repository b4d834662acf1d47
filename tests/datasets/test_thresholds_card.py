"""Where an export's thresholds come from (the profiles), and what its card may show."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from archive.catalog.models_governance import ProfileVersion, ProfileVersionStatus
from archive.datasets.card import build_card, masked_cells, render_html
from archive.datasets.thresholds import ThresholdsUnknown, thresholds_for
from tests.paths import REPO_ROOT


def _profiles(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", folder)
    (folder / "strict-l.yaml").write_text(
        "name: strict-l\nextends: ma-national\ndatasets: {l_diversity: 3}\n"
    )
    (folder / "strict-k.yaml").write_text(
        "name: strict-k\nextends: ma-national\ndatasets: {k_anonymity: 9}\n"
    )
    return folder


def test_strictest_threshold_of_the_current_profiles(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Rules: an export of data from several profiles takes the largest k and the largest l
    among them; a profile's active version wins over its file; a profile that cannot be
    read (or a name that is no profile name) refuses the export instead of falling back to
    a weaker default."""
    folder = _profiles(tmp_path)
    with sessions() as session:
        both = thresholds_for(session, ["strict-k", "strict-l", "ma-national"], folder)
        assert (both.k, both.l_diversity) == (9, 3)
        assert both.sources["strict-k"][1:] == (9, 2)
        assert thresholds_for(session, [], folder).k == 5
    active_text = "name: strict-k\nextends: ma-national\ndatasets: {k_anonymity: 12}\n"
    with sessions.begin() as session:
        session.add(
            ProfileVersion(
                name="strict-k",
                version="whatever",
                yaml_text=active_text,
                status=ProfileVersionStatus.ACTIVE,
                proposed_by="steward-a",
                proposed_at=datetime.now(UTC),
                activated_at=datetime.now(UTC),
            )
        )
    with sessions() as session:
        assert thresholds_for(session, ["strict-k"], folder).k == 12
        for bad in ("nothing-here", "../ma-national", "x.yaml"):
            with pytest.raises(ThresholdsUnknown):
                thresholds_for(session, ["ma-national", bad], folder)


def _records(counts: dict[str, int]) -> list[dict[str, str]]:
    out = []
    for region, n in counts.items():
        for i in range(n):
            out.append(
                {
                    "patient": f"{region}-{i}",
                    "region": region,
                    "sex": "F",
                    "age_band": "40-49",
                    "modality": "CT",
                    "manufacturer": "ACME",
                }
            )
    return out


def test_card_never_shows_a_small_count() -> None:
    """Rule: no table or chart of a card discloses a count from 1 to k - 1: such a cell reads
    "<k" and loses its share; a dimension with a single such cell hides the next smallest
    too, so that no hidden count is the total minus the shown ones; zero stays zero. Flags
    still name the small strata. (Cards of exports, which hold at least k patients.)"""
    rng = random.Random(7)
    for _ in range(200):
        k = rng.randint(2, 10)
        counts = {f"r{i}": rng.choice((0, 1, 2, 3, 5, 8, 13, 40)) for i in range(rng.randint(2, 6))}
        if sum(counts.values()) < k:
            continue  # an export holds at least k patients, or it is refused
        archive = {r: n + rng.randint(0, 20) for r, n in counts.items()}
        card = build_card("d", _records(counts), _records(archive), {}, small_cell=k)
        rows = {row["value"]: row for row in card["distributions"]["region"]}
        hidden = masked_cells(counts, k)
        for region, n in counts.items():
            if region not in rows:
                assert n == 0 == archive[region]  # no patient anywhere: no row
                continue
            row = rows[region]
            if 0 < n < k:
                assert region in hidden
            if region in hidden:
                assert row["patients"] == f"<{k}" and row["share"] is None
            else:
                assert row["patients"] == n and (n == 0 or n >= k)
        shown = [n for r, n in counts.items() if r not in hidden and n > 0]
        if hidden:
            # the total minus the shown cells spreads over two or more hidden cells
            assert len(hidden) >= 2 or not shown
        for row in card["distributions"]["region"]:
            if 0 < archive[row["value"]] < k:
                assert row["archive_share"] is None
        page = render_html(card, Path("/nonexistent"))
        for region in hidden:
            assert f"<td>{region}</td><td>&lt;{k}</td><td>suppressed</td>" in page
        small = {f["value"] for f in card["flags"] if f["dimension"] == "region"}
        assert {r for r, n in counts.items() if 0 < n < min(k, 5)} <= small
