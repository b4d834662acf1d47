"""Moved to tests/support/harness.py. This module stays only so that branches written before
the move still import; new code imports tests.support.harness."""

from tests.support.harness import *  # noqa: F403
