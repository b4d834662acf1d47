"""Moved to tests/support/services.py. This module stays only so that branches written before
the move still import; new code imports tests.support.services."""

from tests.support.services import *  # noqa: F403
