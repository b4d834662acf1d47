"""Regenerate the card shown in docs/datasets.md from a real run: 2,400 generated patients
(tests/support/cohort.py) in a throwaway SQLite catalog, a sealed certification set, then
the `ct-train` export through the command line. Writes docs/datasets/ct-train-card.json and
ct-train-region.svg, and prints the command lines' answers.

    .venv/bin/python scripts/dataset_card_example.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from amana.cli_datasets import dataset_app  # noqa: E402
from amana.keys import ensure_key  # noqa: E402
from archive.catalog.db import make_engine, make_sessionmaker  # noqa: E402
from archive.catalog.migrate import upgrade  # noqa: E402
from tests.catalog.conftest import mint  # noqa: E402
from tests.support.cohort import build_archive  # noqa: E402


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="amana-card-"))
    try:
        url = f"sqlite:///{home / 'catalog.db'}"
        upgrade(url)
        sessions = make_sessionmaker(make_engine(url))
        ensure_key(home / "secrets" / "pseudonym.key")
        build_archive(sessions, home / "archive", patients=2400, seed=2026)
        env = {"AMANA_DATABASE_URL": url, "AMANA_HOME": str(home)}
        researcher, certifier = mint(sessions, "researcher"), mint(sessions, "certifier")
        runner = CliRunner()
        steps = [
            [
                "create",
                "cert-casablanca",
                "--token",
                certifier,
                "--where",
                "region=Casablanca-Settat",
                "--split",
                "test=1",
            ],
            ["seal", "cert-casablanca", "--token", certifier],
            ["create", "ct-train", "--token", researcher, "--where", "modality=CT"],
            ["export", "ct-train", "--token", researcher, "--to", str(home / "out")],
        ]
        for args in steps:
            result = runner.invoke(dataset_app, args, env=env)
            print("$ amana dataset", " ".join(a if len(a) < 40 else "$TOKEN" for a in args))
            print(result.output.strip())
            if result.exit_code:
                raise SystemExit(result.exit_code)
        docs = REPO / "docs" / "datasets"
        shutil.copy(home / "out" / "card.json", docs / "ct-train-card.json")
        shutil.copy(home / "out" / "charts" / "region.svg", docs / "ct-train-region.svg")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
