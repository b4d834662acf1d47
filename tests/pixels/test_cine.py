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


def _cine(odd_text: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    banner = imaging.Text(8, 6, imaging.NAME, 14, (255, 255, 255))
    other = imaging.Text(8, 6, odd_text, 14, (255, 255, 255))
    images, truths = [], []
    for index in range(FRAMES):
        # The speckle changes every frame, as a live ultrasound image does.
        texts = [other if index == ODD_FRAME else banner]
        image, truth = imaging.draw(False, seed=index, texts=texts)
        images.append(image)
        truths.append(truth)
    return images, truths


@pytest.mark.parametrize(
    ("odd_text", "beyond_the_masks"),
    [
        (f"DOB {imaging.BIRTH_DATE}", False),
        (f"{imaging.NAME} DOB {imaging.BIRTH_DATE}", True),
    ],
    ids=["within-the-masks", "beyond-the-masks"],
)
def test_cine_is_masked_in_every_frame_with_ocr_on_a_few(
    odd_text: str, beyond_the_masks: bool
) -> None:
    """Rule: in a cine, OCR reads the first, middle and last frames; a frame whose text
    areas match a read frame reuses its boxes, a frame whose banner differs where the
    masks every frame gets leave it visible is read on its own (a banner redrawn inside
    them is filled anyway); every frame is masked (30 frames, at most 4 readings)."""
    images, truths = _cine(odd_text)
    original = imaging.dataset(images, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    output = copy.deepcopy(original)

    result = run(original, output, POLICY, IDENTIFYING)

    assert "verified" in result.actions
    assert ODD_FRAME not in sample_indices(FRAMES, POLICY.ocr.sample_frames)
    if beyond_the_masks:
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


# The part of the made-up loop that moves: a live image between still borders and bands.
LIVE = (slice(150, 330), slice(150, 490))


def _moving_loop(extra_on: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames whose live part changes on every frame (other speckle) while the border with
    the patient's name stays; frame `extra_on` also shows the patient ID over its live
    part (text drawn over the image on one frame only)."""
    banner = imaging.Text(8, 6, imaging.NAME, 14, (255, 255, 255))
    over = imaging.Text(200, 220, f"ID {imaging.PATIENT_ID}", 16, (255, 255, 255))
    still, _ = imaging.draw(False, seed=1, texts=[banner])
    images, truths = [], []
    for index in range(FRAMES):
        texts = [banner, over] if index == extra_on else [banner]
        image, truth = imaging.draw(False, seed=1, texts=texts)
        live, _ = imaging.draw(False, seed=100 + index, texts=[])
        image[LIVE] = live[LIVE]
        if index == extra_on:
            drawn, _ = imaging.draw(False, seed=100 + index, texts=[over])
            image[LIVE] = drawn[LIVE]
        assert np.array_equal(image[: LIVE[0].start], still[: LIVE[0].start])
        images.append(image)
        truths.append(truth)
    return images, truths


def test_text_over_the_moving_part_of_a_sampled_frame_is_read_there() -> None:
    """Rule: a sampled frame that differs from a frame already read only in a part (its
    live image) is read in that part alone; text drawn there on that frame only is still
    read and masked, on every frame, and the name on the still border is masked on every
    frame though the live image under the masks differs from frame to frame."""
    middle = sample_indices(FRAMES, POLICY.ocr.sample_frames)[1]
    images, truths = _moving_loop(extra_on=middle)
    original = imaging.dataset(images, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    output = copy.deepcopy(original)

    result = run(original, output, POLICY, IDENTIFYING)

    assert "verified" in result.actions
    assert middle in result.ocr_frames
    pixels = output.pixel_array
    for index, truth in enumerate(truths):
        leaked = int(np.count_nonzero(pixels[index][truth]))
        assert leaked == 0, f"frame {index}: {leaked} text pixels left unmasked"


def test_a_loop_whose_live_image_moves_is_read_on_its_sampled_frames_only() -> None:
    """Rule: a live image that moves under still bands does not make every frame differ
    (differences under a mask every frame gets do not count): OCR reads the sampled
    frames only, and every frame is masked."""
    images, truths = _moving_loop(extra_on=None)
    original = imaging.dataset(images, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    output = copy.deepcopy(original)

    result = run(original, output, POLICY, IDENTIFYING)

    assert "verified" in result.actions
    assert set(result.ocr_frames) <= set(sample_indices(FRAMES, POLICY.ocr.sample_frames))
    pixels = output.pixel_array
    for index, truth in enumerate(truths):
        assert not pixels[index][truth].any(), f"frame {index}: text pixels left unmasked"


def test_verification_reads_the_changed_part_of_a_frame_it_reads_in_part() -> None:
    """Rule: verification reads a frame that equals a verified frame except in a part in
    that part alone; text left there (on that frame only) still quarantines."""
    from anonymizer.errors import QuarantineError
    from anonymizer.pixels import codec
    from anonymizer.pixels.clean import _verify

    verified = sample_indices(FRAMES, POLICY.ocr.sample_frames, shift=0.5)[1]
    images, _ = _moving_loop(extra_on=verified)
    # Nothing masked: the name on the border is caught on the first frame read whole, so
    # it is covered by a mask here, as detection would have.
    original = imaging.dataset(images, sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    stack = np.stack(images)
    stack[:, :LIVE[0].start, :] = 0
    frames = codec.Frames(stack, "MONOCHROME2", 8, None)
    kept = np.zeros(stack.shape[1:], dtype=bool)

    with pytest.raises(QuarantineError) as caught:
        _verify(frames, POLICY, original, IDENTIFYING, set(), kept)
    assert f"frame {verified + 1}" in str(caught.value)
