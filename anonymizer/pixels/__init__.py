"""Burned-in text: the pixel policy of a profile and its application.

CONTRACT (placeholder until the pixel work lands; signatures are fixed):
- `PixelPolicy`: pydantic model (extra="forbid") for the `pixel:` section of a profile.
- `clean_pixels(original, output, policy, identifying_values)` mutates `output` (already
  header-scrubbed) and returns the pixel actions taken; raises QuarantineError when the
  pixels cannot be cleaned with certainty.
"""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel, ConfigDict
from pydicom.dataset import Dataset


class PixelPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")


def clean_pixels(
    original: Dataset,
    output: Dataset,
    policy: PixelPolicy,
    identifying_values: Collection[str],
) -> tuple[str, ...]:
    return ("not_examined",)
