"""Pseudonyms link what belongs together and nothing else; references stay valid."""

from __future__ import annotations

import io
from datetime import date

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from anonymizer.engine import Deidentifier
from tests.anonymizer.factory import Identity, ct_instance, item, to_bytes, uid

pytestmark = pytest.mark.ocr

KEY_OBJECT = "1.2.840.10008.5.1.4.1.1.88.59"


def run(engine: Deidentifier, ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(engine.deidentify(to_bytes(ds)).data))


def study(who: Identity, study_date: str, count: int = 3) -> list[Dataset]:
    study_uid, series_uid = uid(), uid()
    images = [ct_instance(who, study_uid, series_uid, study_date=study_date) for _ in range(count)]
    frame = images[0].FrameOfReferenceUID
    for number, image in enumerate(images, 1):
        image.InstanceNumber = number
        image.FrameOfReferenceUID = frame
    return images


def key_object(who: Identity, images: list[Dataset]) -> Dataset:
    """A key object selection that references every image, as a PACS would send it."""
    ko = Dataset()
    ko.SpecificCharacterSet = "ISO_IR 192"
    ko.SOPClassUID = KEY_OBJECT
    ko.SOPInstanceUID = uid()
    ko.StudyInstanceUID = images[0].StudyInstanceUID
    ko.SeriesInstanceUID = uid()
    ko.Modality = "KO"
    ko.PatientName = who.patient_name
    ko.PatientID = who.patient_id
    ko.IssuerOfPatientID = who.issuer
    ko.StudyDate = images[0].StudyDate
    ko.CurrentRequestedProcedureEvidenceSequence = Sequence([
        item(
            StudyInstanceUID=images[0].StudyInstanceUID,
            ReferencedSeriesSequence=Sequence([
                item(
                    SeriesInstanceUID=images[0].SeriesInstanceUID,
                    ReferencedSOPSequence=Sequence([
                        item(ReferencedSOPClassUID=i.SOPClassUID,
                             ReferencedSOPInstanceUID=i.SOPInstanceUID)
                        for i in images
                    ]),
                )
            ]),
        )
    ])
    return ko


def days(a: str, b: str) -> int:
    parse = lambda s: date(int(s[:4]), int(s[4:6]), int(s[6:8]))  # noqa: E731
    return (parse(b) - parse(a)).days


def test_same_patient_two_studies_same_pseudonym(national: Deidentifier) -> None:
    """Rule: the same patient (issuer + ID) in two studies gets the same pseudonym, and the
    interval between the studies is exact although both dates moved."""
    who = Identity()
    first = run(national, study(who, "20230110", 1)[0])
    second = run(national, study(who, "20240302", 1)[0])
    assert first.PatientID == second.PatientID != who.patient_id
    assert first.PatientName == second.PatientName
    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert first.StudyDate != "20230110"
    assert days(first.StudyDate, second.StudyDate) == days("20230110", "20240302")


def test_different_patients_get_different_pseudonyms(national: Deidentifier) -> None:
    """Rule: different patients, different pseudonyms - also the same local ID from another
    issuer (hospital), and patients without any ID are never merged."""
    a = run(national, study(Identity(patient_id="IPP1000001"), "20240101", 1)[0])
    b = run(national, study(Identity(patient_id="IPP1000002"), "20240101", 1)[0])
    c = run(national, study(Identity(patient_id="IPP1000001", issuer="AUTRE-HOPITAL"),
                            "20240101", 1)[0])
    assert len({a.PatientID, b.PatientID, c.PatientID}) == 3
    anonymous = []
    for _ in range(2):
        ds = study(Identity(), "20240101", 1)[0]
        ds.PatientID = ""
        del ds.IssuerOfPatientID
        anonymous.append(run(national, ds).PatientID)
    assert anonymous[0] != anonymous[1]
    assert all(anonymous)  # a pseudonym is written even when the sender sent no ID


def test_every_reference_resolves_to_an_output_instance(national: Deidentifier) -> None:
    """Rule: UIDs are remapped the same way everywhere, so every reference in the output
    (study, series, instance, frame of reference) resolves to an output instance."""
    who = Identity()
    images = study(who, "20240315")
    outputs = [run(national, image) for image in images]
    ko = run(national, key_object(who, images))
    sop_uids = {o.SOPInstanceUID for o in outputs}
    assert len(sop_uids) == 3 and all(u.startswith("2.25.") for u in sop_uids)
    assert {o.StudyInstanceUID for o in outputs} == {ko.StudyInstanceUID}
    assert len({o.SeriesInstanceUID for o in outputs}) == 1
    assert len({o.FrameOfReferenceUID for o in outputs}) == 1
    evidence = ko.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == ko.StudyInstanceUID
    series = evidence.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == outputs[0].SeriesInstanceUID
    referenced = {r.ReferencedSOPInstanceUID for r in series.ReferencedSOPSequence}
    assert referenced == sop_uids
    assert {r.ReferencedSOPClassUID for r in series.ReferencedSOPSequence} == {
        images[0].SOPClassUID
    }


def test_dates_of_one_patient_move_together(national: Deidentifier) -> None:
    """Rule: one offset per patient, applied to every date and date-time, within the
    configured range; times are kept."""
    ds = study(Identity(), "20240315", 1)[0]
    ds.SeriesDate = "20240316"
    ds.AcquisitionDateTime = "20240317093000.5"
    out = run(national, ds)
    offset = days("20240315", out.StudyDate)
    shift = national.profile.pseudonyms.date_shift_days
    assert shift.min <= offset <= shift.max and offset != 0
    assert days("20240316", out.SeriesDate) == offset
    assert days("20240317", out.AcquisitionDateTime[:8]) == offset
    assert out.AcquisitionDateTime[8:] == "093000.5"
    assert out.StudyTime == "101500"
