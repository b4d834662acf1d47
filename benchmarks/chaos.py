"""Nothing lost under faults, at full size (the scenario lives in tests/support/chaos.py,
which the test suite runs small).

    .venv/bin/python -m benchmarks.chaos [--instances 2000]
"""

from __future__ import annotations

from tests.support.chaos import main

if __name__ == "__main__":
    raise SystemExit(main())
