"""Multi-frame images: every frame masked, at the cost of OCR on a few frames."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from anonymizer.pixels import OcrSettings, PixelPolicy
from anonymizer.pixels.cine import sample_indices
from anonymizer.pixels.clean import run
from anonymizer.pixels.trace import PixelTrace

from . import imaging
from .imaging import IDENTIFYING

pytestmark = pytest.mark.ocr

POLICY = PixelPolicy(rules=[], ocr=OcrSettings(languages=["eng"]))
FRAMES = 30
ODD_FRAME = 11  # neither the first, the middle nor the last frame


def _cine() -> tuple[list[np.ndarray], list[np.ndarray]]:
    banner = imaging.Text(8, 6, imaging.NAME, 14, (255, 255, 255))
    other = imaging.Text(8, 6, f"DOB {imaging.BIRTH_DATE}", 14, (255, 255, 255))
    images, truths = [], []
    for index in range(FRAMES):
        # The speckle changes every frame, as a live ultrasound image does.
        texts = [other if index == ODD_FRAME else banner]
        image, truth = imaging.draw(False, seed=index, texts=texts)
        images.append(image)
        truths.append(truth)
    return images, truths


def test_cine_is_masked_in_every_frame_with_ocr_on_a_few() -> None:
    """Rule: in a cine, OCR reads the first, middle and last frames; a frame whose text
    areas match a read frame reuses its boxes, a frame whose banner differs is read on its
    own; every frame is masked (30 frames, at most 4 readings)."""
    images, truths = _cine()
    original = imaging.dataset(images, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    output = copy.deepcopy(original)

    result = run(original, output, POLICY, IDENTIFYING)

    assert "verified" in result.actions
    assert ODD_FRAME not in sample_indices(FRAMES, POLICY.ocr.sample_frames)
    assert ODD_FRAME in result.ocr_frames
    assert result.ocr_reads <= 4
    pixels = output.pixel_array
    for index, truth in enumerate(truths):
        leaked = int(np.count_nonzero(pixels[index][truth]))
        assert leaked == 0, f"frame {index}: {leaked} text pixels left unmasked"


def test_a_still_loop_is_read_once_and_masked_in_every_frame() -> None:
    """Rule: frames equal pixel for pixel read the same, so a loop of identical frames is
    read by OCR once (the sampled frames equal to it reuse its reading) and every frame
    is still masked (a single mask for all frames is applied to each of them)."""
    image, truth = imaging.draw(
        True, seed=3, texts=[imaging.Text(8, 6, imaging.NAME, 14, (255, 255, 255))]
    )
    original = imaging.dataset([image] * 12, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    output = copy.deepcopy(original)

    trace = PixelTrace()
    result = run(original, output, POLICY, IDENTIFYING, trace=trace)

    assert "verified" in result.actions
    assert result.ocr_frames == [0]
    pixels = output.pixel_array
    assert truth.any()
    for index in range(12):
        assert not pixels[index][truth].any(), f"frame {index}: text pixels left unmasked"
        # Outside the masks the frames are left as they were.
        mask = trace.mask_of(index)
        assert mask is not None
        assert np.array_equal(pixels[index][~mask], image[~mask])
