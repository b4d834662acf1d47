"""Small pictures of archived series for the console's study page, made from the
de-identified instances in the archive store (never from the spool or the quarantine, which
hold originals): the middle instance of the series, its first frame, at most THUMBNAIL_PX
on a side, PNG. The instance comes through the store's own `read` (archive/stores/): a file
under the archive folder, or a WADO-RS retrieve from a DICOMweb archive; both are decoded
and drawn here, so a picture looks the same whichever store holds it."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from pydicom import dcmread
from sqlalchemy import select
from sqlalchemy.orm import Session

from anonymizer.errors import QuarantineError, RejectError
from anonymizer.pixels import codec
from anonymizer.pixels.clean import display_frame
from archive.catalog.models import Instance, Series, Study
from archive.stores import ArchiveStore

THUMBNAIL_PX = 160
# A thumbnail decodes one file; a larger one (a long cine) gets no picture.
MAX_DECODED_BYTES = 256 * 2**20


def middle_instance(session: Session, study_uid: str, series_uid: str) -> str:
    """The archive path of the instance that pictures `series_uid` (of `study_uid`):
    not_found when the series is not in the study, or its instance is too large to draw."""
    instances = session.execute(
        select(Instance.archive_path, Instance.size_bytes)
        .join(Series, Series.id == Instance.series_id)
        .join(Study, Study.id == Series.study_id)
        .where(Study.study_uid == study_uid, Series.series_uid == series_uid)
        .order_by(Instance.instance_number, Instance.id)
    ).all()
    if not instances:
        raise RejectError("no such series in this study", code="not_found")
    relpath, size = instances[len(instances) // 2]
    # Never fetched: a store would hand the whole object over before the decode refused it.
    if size > MAX_DECODED_BYTES:
        raise RejectError("no picture of this series", code="not_found")
    return str(relpath)


def picture(store: ArchiveStore, relpath: str) -> bytes:
    """The PNG of the archived instance `relpath`; not_found when the store has no such
    instance or it cannot be pictured. Raises ArchiveUnavailable when the store does not
    answer. Call it with no catalog transaction open: a DICOMweb read takes its time."""
    data = store.read(Path(relpath))
    if data is None:
        raise RejectError("no picture of this series", code="not_found")
    return render(data)


def series_thumbnail(
    session: Session, study_uid: str, series_uid: str, store: ArchiveStore
) -> bytes:
    """`middle_instance`, then `picture`, for callers that hold no transaction open."""
    return picture(store, middle_instance(session, study_uid, series_uid))


def render(data: bytes) -> bytes:
    try:
        frames = codec.decode(dcmread(io.BytesIO(data)), MAX_DECODED_BYTES)
        image = Image.fromarray(display_frame(frames, 0))
    except (OSError, QuarantineError, ValueError, RuntimeError, AttributeError) as exc:
        # Not an image (a structured report), a syntax without a decoder, or not DICOM:
        # the page shows the series without a picture.
        raise RejectError("no picture of this series", code="not_found") from exc
    image = image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
