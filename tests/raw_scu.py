"""A pynetdicom SCU that sends arbitrary bytes as a C-STORE data set, like a broken PACS."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config


def _file_with_payload(directory: Path, name: str, payload: bytes) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = directory / f"{name}.dcm"
    with path.open("wb") as fh:
        fh.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(fh, meta, enforce_standard=True)  # type: ignore[arg-type]
        fh.write(payload)
    return path


def send_raw_payloads(port: int, payloads: list[tuple[str, bytes]]) -> list[int]:
    """Send each payload verbatim as a data set; return the C-STORE statuses."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title="BROKENPACS")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        statuses: list[int] = []
        with tempfile.TemporaryDirectory() as tmp:
            paths = [_file_with_payload(Path(tmp), n, p) for n, p in payloads]
            assoc = ae.associate("127.0.0.1", port, ae_title="AMANA")
            assert assoc.is_established
            try:
                for path in paths:
                    status = assoc.send_c_store(path)
                    statuses.append(int(status.Status) if status else -1)
            finally:
                assoc.release()
        return statuses
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def send_dataset_files(port: int, files: list[Path]) -> list[int]:
    """Send real DICOM files with pynetdicom and return each C-STORE status."""
    import pydicom

    ae = AE(ae_title="TESTPACS")
    datasets = [pydicom.dcmread(f) for f in files]
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="AMANA")
    assert assoc.is_established
    statuses: list[int] = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if status else -1)
    finally:
        assoc.release()
    return statuses


def dataset_body(path: Path) -> bytes:
    """The data set of a Part 10 file as it travels on the wire (explicit VR little endian)."""
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(path)
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()
