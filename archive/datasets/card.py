"""The dataset card: its distribution by region, sex, age band, modality and manufacturer
against the whole archive and against the steward's population reference, strata under a
threshold flagged, drawn as bar charts (PNG and SVG) and embedded in an HTML page.

Counts are of patients (a patient counted once per value), so a long CT series does not
weigh more than a chest X-ray. Values are pseudonymous categories; nothing identifies.

Small cells are not disclosed: a count from 1 to `small_cell - 1` (the export's k) is shown
as "<k", and its share (which times the total would give the count back) is left out; when a
dimension has exactly one such cell, the next smallest is hidden too, so the total minus the
others does not give it away. The same holds for the archive's shares. Zero is shown: it says
that no patient has the value, not who has it.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

DIMENSIONS = ("region", "sex", "age_band", "modality", "manufacturer")
REFERENCE_CSV = "reference/population_by_region.csv"


def distribution(records: Sequence[Mapping[str, str]], dimension: str) -> dict[str, int]:
    seen = {(r["patient"], r[dimension]) for r in records}
    return dict(sorted(Counter(value for _, value in seen).items()))


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def load_reference(path: Path | None = None) -> dict[str, float]:
    """Population shares per region from the steward's CSV (columns region, population)."""
    if path is None:
        text = resources.files("amana_profiles").joinpath(REFERENCE_CSV).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    lines = (line for line in io.StringIO(text) if not line.startswith("#"))
    rows = list(csv.DictReader(lines))
    return shares({r["region"]: int(r["population"]) for r in rows})


def build_card(
    name: str,
    records: Sequence[Mapping[str, str]],
    archive_records: Sequence[Mapping[str, str]],
    reference: Mapping[str, float],
    *,
    min_share: float = 0.02,
    min_patients: int = 5,
    small_cell: int = 5,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card's data (JSON-ready). A stratum is flagged when it holds fewer than
    `min_patients` patients, or less than `min_share` of the dataset, or (regions) less
    than half its share of the population. Counts under `small_cell` are masked."""
    dims: dict[str, Any] = {}
    flags: list[dict[str, Any]] = []
    for dim in DIMENSIONS:
        counts = distribution(records, dim)
        mine = shares(counts)
        archive_counts = distribution(archive_records, dim)
        whole = shares(archive_counts)
        values = sorted(set(counts) | set(whole) | (set(reference) if dim == "region" else set()))
        rows = []
        for value in values:
            row: dict[str, Any] = {
                "value": value,
                "patients": counts.get(value, 0),
                "share": round(mine.get(value, 0.0), 4),
                "archive_share": round(whole.get(value, 0.0), 4),
            }
            if dim == "region":
                row["population_share"] = round(reference.get(value, 0.0), 4)
            # A value the query left out (another modality) is no finding; a region is.
            why = (
                _flag(row, min_share, min_patients) if value in counts or dim == "region" else None
            )
            if why:
                flags.append({"dimension": dim, "value": value, "reason": why})
            rows.append(row)
        hidden = masked_cells(counts, small_cell)
        hidden_archive = masked_cells(archive_counts, small_cell)
        for row in rows:
            if row["value"] in hidden:
                row["patients"] = f"<{small_cell}"
                row["share"] = None
                row["suppressed"] = True
            if row["value"] in hidden_archive:
                row["archive_share"] = None
        dims[dim] = rows
    return {
        "dataset": name,
        "patients": len({r["patient"] for r in records}),
        "thresholds": {
            "min_share": min_share,
            "min_patients": min_patients,
            "small_cell": small_cell,
        },
        "distributions": dims,
        "flags": flags,
        **(extra or {}),
    }


def masked_cells(counts: Mapping[str, int], small_cell: int) -> set[str]:
    """The values whose counts a card must not show: 1 to small_cell - 1 (primary), and
    when that is a single cell, the next smallest non-zero one (secondary), since the
    dimension's total would otherwise give the hidden count back."""
    nonzero = {value: n for value, n in counts.items() if n > 0}
    hidden = {value for value, n in nonzero.items() if n < small_cell}
    if len(hidden) == 1:
        rest = sorted((n, value) for value, n in nonzero.items() if value not in hidden)
        if rest:
            hidden.add(rest[0][1])
    return hidden


def mask_count(n: int, small_cell: int) -> int | str:
    return f"<{small_cell}" if 0 < n < small_cell else n


def _flag(row: Mapping[str, Any], min_share: float, min_patients: int) -> str | None:
    if row["patients"] < min_patients:
        return f"fewer than {min_patients} patients"
    if row["share"] < min_share:
        return f"under {min_share:.0%} of the dataset"
    population = row.get("population_share")
    if population and row["share"] < population / 2:
        return "under half its population share"
    return None


def draw(card: Mapping[str, Any], folder: Path) -> list[Path]:
    """One bar chart per dimension, as PNG and SVG in `folder`: dataset beside archive
    (and population, for regions)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for dim, rows in card["distributions"].items():
        labels = [r["value"] for r in rows]
        series = [("dataset", "share"), ("archive", "archive_share")]
        if dim == "region":
            series.append(("population", "population_share"))
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 2), 3.2))
        width = 0.8 / len(series)
        small = card.get("thresholds", {}).get("small_cell", 5)
        for i, (label, field) in enumerate(series):
            xs = [j + i * width for j in range(len(labels))]
            # A masked share gets no bar (its height would tell the count), only its mark.
            heights = [r.get(field) or 0.0 for r in rows]
            ax.bar(xs, heights, width=width, label=label)
            for x, r in zip(xs, rows, strict=True):
                if field in r and r[field] is None:
                    ax.text(x, 0, f"<{small}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(labels))])
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share of patients")
        ax.set_title(dim.replace("_", " "))
        ax.legend(fontsize=7)
        fig.tight_layout()
        for ext in ("png", "svg"):
            path = folder / f"{dim}.{ext}"
            fig.savefig(path, metadata={"Date": None} if ext == "svg" else None)
            written.append(path)
        plt.close(fig)
    return written


def render_html(card: Mapping[str, Any], charts: Path) -> str:
    """A self-contained page: the card's figures and its charts embedded as PNG."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Dataset card: {esc(str(card['dataset']))}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
        ".flag{color:#a00}</style></head><body>",
        f"<h1>Dataset card: {esc(str(card['dataset']))}</h1><ul>",
    ]
    keys = (
        "patients",
        "studies",
        "instances",
        "k_anonymity",
        "l_diversity",
        "k_threshold",
        "l_threshold",
        "suppressed_patients",
    )
    for key in keys:
        if key in card:
            parts.append(f"<li>{esc(key)}: {esc(str(card[key]))}</li>")
    if card.get("generalization"):
        parts.append(f"<li>generalized: {esc(', '.join(card['generalization']))}</li>")
    if "splits" in card:
        splits = ", ".join(f"{k}: {v}" for k, v in card["splits"].items())
        parts.append(f"<li>patients per split: {esc(splits)}</li>")
    parts.append("</ul><h2>Flags</h2><ul>")
    for flag in card["flags"]:
        text = f"{flag['dimension']} = {flag['value']}: {flag['reason']}"
        parts.append(f"<li class='flag'>{esc(text)}</li>")
    parts.append("</ul>")
    for dim, rows in card["distributions"].items():
        parts.append(f"<h2>{esc(dim.replace('_', ' '))}</h2>")
        png = charts / f"{dim}.png"
        if png.exists():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{esc(dim)}' src='data:image/png;base64,{data}'>")
        cols = [
            c
            for c in ("value", "patients", "share", "archive_share", "population_share")
            if any(c in r for r in rows)
        ]
        parts.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>")
        for row in rows:
            cells = "".join(f"<td>{esc(_cell(row, c))}</td>" for c in cols)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _cell(row: Mapping[str, Any], column: str) -> str:
    if column not in row:
        return ""
    value = row[column]
    return "suppressed" if value is None else str(value)
