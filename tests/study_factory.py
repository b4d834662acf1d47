"""Moved to tests/support/study_factory.py. This module stays only so that branches written before
the move still import; new code imports tests.support.study_factory."""

from tests.support.study_factory import *  # noqa: F403
