"""Moved to tests/support/pipeline_helpers.py. This module stays only so that branches
written before the move still import; new code imports tests.support.pipeline_helpers."""

from tests.support.pipeline_helpers import *  # noqa: F403
