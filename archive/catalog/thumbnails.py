"""Small pictures of archived series for the console's study page, made from the
de-identified files in the archive (never from the spool or the quarantine, which hold
originals): the middle instance of the series, its first frame, at most THUMBNAIL_PX on a
side, PNG."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image
from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.orm import Session

from anonymizer.errors import QuarantineError, RejectError
from anonymizer.pixels import codec
from anonymizer.pixels.clean import display_frame
from archive.catalog.models import Instance, Series, Study

THUMBNAIL_PX = 160
# A thumbnail decodes one file; a larger one (a long cine) gets no picture.
MAX_DECODED_BYTES = 256 * 2**20


def series_thumbnail(session: Session, study_uid: str, series_uid: str, archive_dir: Path) -> bytes:
    """The PNG of `series_uid` (of `study_uid`): not_found when the series is not in the
    study or its middle instance cannot be pictured."""
    instances = session.scalars(
        select(Instance.archive_path)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .where(Study.study_uid == study_uid, Series.series_uid == series_uid)
        .order_by(Instance.instance_number, Instance.id)
    ).all()
    if not instances:
        raise RejectError("no such series in this study", code="not_found")
    return render(archive_dir, instances[len(instances) // 2])


def render(archive_dir: Path, relpath: str) -> bytes:
    root = archive_dir.resolve()
    path = (root / relpath).resolve()
    if not path.is_relative_to(root):
        raise RejectError("no picture of this series", code="not_found")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            frames = codec.decode(dcmread(handle), MAX_DECODED_BYTES)
        picture = Image.fromarray(display_frame(frames, 0))
    except (OSError, QuarantineError, ValueError, RuntimeError, AttributeError) as exc:
        # Not an image (a structured report), a syntax without a decoder, or a missing file:
        # the page shows the series without a picture.
        raise RejectError("no picture of this series", code="not_found") from exc
    picture = picture.convert("RGB" if picture.mode not in ("L", "RGB") else picture.mode)
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
