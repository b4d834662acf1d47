"""What the pixel step saw and decided for one instance, recorded for a steward's preview.

Filled by clean.run when a caller passes one (previews only; the archive's workers never
do): the frames as decoded, the rectangles of the device rules, every word OCR read with
its fate, the masks, and the words the verification still read when it quarantined. The
words are the patient's own text: a trace is rendered into a preview file and dropped,
never logged, stored or sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .codec import Frames
from .ocr import Word
from .rules import Rect

WordFate = Literal["masked", "kept"]
# Why verification would not let an instance through: a word matching the instance's
# identifying values, any text where the modality allows none, a word off the allow-list.
RereadFinding = Literal["identifying", "forbidden_text", "remaining"]


@dataclass
class PixelTrace:
    """One instance's pixel step, as it ran; empty when the image was not examined."""

    examined: bool = False
    before: Frames | None = None
    # The frames once masked (what verification read, and what is encoded).
    masked: Frames | None = None
    rule_rects: list[tuple[str, Rect]] = field(default_factory=list)
    # Frame index -> the words OCR read there and what became of them. Frames that reused
    # another frame's boxes (cine.py) are not in it: `masks` says what they got.
    read: dict[int, list[tuple[Word, WordFate]]] = field(default_factory=dict)
    masks: list[np.ndarray] = field(default_factory=list)
    # Frame index -> words the verification's readings found after masking, and why each
    # quarantines (recorded only when the instance is quarantined for it).
    reread: dict[int, list[tuple[Word, RereadFinding]]] = field(default_factory=dict)

    def mask_of(self, frame: int) -> np.ndarray | None:
        if not self.masks:
            return None
        return self.masks[frame] if len(self.masks) > 1 else self.masks[0]
