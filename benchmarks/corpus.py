"""Writes the benchmarks' synthetic corpus to a folder (made in tests/support/corpus.py).

    .venv/bin/python -m benchmarks.corpus OUT [--instances 2000] [--studies 20] [--us-share 0.1]

Every name, ID and date in it is invented.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.support.corpus import build_corpus


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--us-share", type=float, default=0.0)
    args = parser.parse_args()
    corpus = build_corpus(
        args.out, instances=args.instances, studies=args.studies, us_share=args.us_share
    )
    print(f"{args.out}: {corpus.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
