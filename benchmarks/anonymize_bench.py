"""Tag-only de-identification throughput: `amana anonymize` against dicognito and deid.

Generates its own corpus (CT-like instances, 512x512 16-bit, a realistic header with
sequences and private blocks, made-up identities) into a temporary folder, then, in the
same run and on the same files:

- amana: the real command, `amana anonymize IN --out OUT` in a subprocess (start-up,
  profile loading and file I/O included), and the engine in-process for reference;
- dicognito: `Anonymizer().anonymize(ds)` per file, read and write included;
- deid: `replace_identifiers` with its default recipe, read and write included.

Prints files/s for each and the ratio of amana to the faster peer (target: >= 2).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/anonymize_bench.py --instances 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]


def _item(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def make_ct(path: Path, study: int, index: int, uids: tuple[str, str, str], pixels: bytes) -> None:
    """One CT instance with the header a scanner writes (about 120 elements)."""
    study_uid, series_uid, frame_uid = uids
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceCreationDate = "20240115"
    ds.InstanceCreationTime = "101512"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.StudyTime, ds.SeriesTime, ds.AcquisitionTime, ds.ContentTime = (
        "101500",
        "101505",
        "101510",
        "101512",
    )
    ds.AccessionNumber = f"ACC{study:08d}"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME MEDICAL"
    ds.InstitutionName = "CHU Ibn Rochd"
    ds.InstitutionAddress = f"{study} rue des Essais, Casablanca"
    ds.ReferringPhysicianName = "Medecin^Fictif"
    ds.StationName = "CTSTATION01"
    ds.StudyDescription = f"CT THORAX Synthetique {study:04d}"
    ds.ProcedureCodeSequence = Sequence(
        [_item(CodeValue="CTCHEST", CodingSchemeDesignator="L", CodeMeaning="CT Thorax")]
    )
    ds.SeriesDescription = "AXIAL 1mm"
    ds.InstitutionalDepartmentName = "Radiologie"
    ds.PerformingPhysicianName = "Radiologue^Fictive"
    ds.OperatorsName = "Manip^Fictif"
    ds.ManufacturerModelName = "Fictional CT 64"
    ds.ReferencedStudySequence = Sequence(
        [_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1", ReferencedSOPInstanceUID=study_uid)]
    )
    ds.PatientName = f"Synthetique^Patient{study:04d}"
    ds.PatientID = f"SYN-{study:06d}"
    ds.IssuerOfPatientID = "CHU-FICTIF"
    ds.PatientBirthDate = f"19{50 + study % 40:02d}0{1 + study % 9}15"
    ds.PatientSex = "MF"[study % 2]
    ds.PatientAge = f"{40 + study % 40:03d}Y"
    ds.PatientWeight = "70"
    ds.PatientAddress = f"{study} avenue Fictive, Rabat"
    ds.ContrastBolusAgent = "IOMERON 350"
    ds.BodyPartExamined = "CHEST"
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.DeviceSerialNumber = "SN-000123"
    ds.SoftwareVersions = "V1.2.3"
    ds.ProtocolName = "THORAX STANDARD"
    ds.ReconstructionDiameter = "350"
    ds.DistanceSourceToDetector = "1040"
    ds.DistanceSourceToPatient = "570"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = "200"
    ds.Exposure = "100"
    ds.FilterType = "BODY"
    ds.GeneratorPower = "24"
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "HFS"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.6
    ds.TotalCollimationWidth = 38.4
    ds.TableSpeed = 46.0
    ds.TableFeedPerRotation = 23.0
    ds.SpiralPitchFactor = 0.6
    ds.CTDIvol = 8.5
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"{study}"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-175.0, -175.0, -float(index)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = str(-float(index))
    ds.ImageComments = f"Synthetique Patient{study:04d} suivi"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = [0.68, 0.68]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.RequestAttributesSequence = Sequence(
        [
            _item(
                RequestedProcedureID=f"RP{study:06d}",
                ScheduledProcedureStepID=f"SPS{study:06d}",
                ScheduledProcedureStepDescription="CT THORAX",
            )
        ]
    )
    ds.PerformedProcedureStepStartDate = "20240115"
    ds.PerformedProcedureStepID = f"PPS{study:06d}"
    block = ds.private_block(0x0019, "ACME CT PRIVATE 1.0", create=True)
    for element in range(0x10, 0x30):
        block.add_new(element, "DS", str(element * 1.5))
    block.add_new(0x40, "LO", f"Synthetique^Patient{study:04d}")
    csa = ds.private_block(0x0029, "ACME CSA HEADER", create=True)
    csa.add_new(0x10, "OB", bytes(2048))
    ds.PixelData = pixels
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "CT_FICTIF"
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def make_corpus(folder: Path, instances: int, per_study: int = 50) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    files = []
    for number in range(instances):
        study, index = divmod(number, per_study)
        if index == 0:
            uids = (generate_uid(), generate_uid(), generate_uid())
            pixels = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16).tobytes()
        path = folder / f"s{study:03d}_i{index:04d}.dcm"
        make_ct(path, study, index, uids, pixels)
        files.append(path)
    return files


def timed(label: str, run: Callable[[], int]) -> float:
    start = time.perf_counter()
    count = run()  # noqa: B023 - called immediately
    seconds = time.perf_counter() - start
    rate = count / seconds
    print(f"{label:<44} {count:>6} files {seconds:8.2f} s {rate:9.1f} files/s", flush=True)
    return rate


def run_amana_cli(corpus: Path, out: Path, key: Path) -> int:
    env = {**os.environ, "AMANA_KEY_FILE": str(key), "AMANA_HOME": str(out.parent / "home")}
    amana = Path(sys.executable).with_name("amana")
    command = [str(amana)] if amana.exists() else [sys.executable, "-m", "amana.cli"]
    result = subprocess.run(
        [*command, "anonymize", str(corpus), "--out", str(out), "--create-key"],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-2000:])
        raise SystemExit("amana anonymize failed")
    return sum(1 for _ in out.rglob("*.dcm"))


def run_amana_engine(files: list[Path], out: Path) -> int:
    sys.path.insert(0, str(REPO))
    from anonymizer.engine import Deidentifier, load_profile
    from anonymizer.paths import archive_relpath
    from anonymizer.pseudonyms import key_from_bytes

    engine = Deidentifier(load_profile("ma-national", REPO / "profiles"), key_from_bytes(b"b" * 32))
    for file in files:
        outcome = engine.deidentify(file.read_bytes())
        target = out / archive_relpath(outcome.facts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(outcome.data)
    return len(files)


def run_dicognito(files: list[Path], out: Path) -> int:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    out.mkdir(parents=True, exist_ok=True)
    for file in files:
        ds = pydicom.dcmread(file)
        anonymizer.anonymize(ds)
        ds.save_as(out / file.name)
    return len(files)


def run_deid(files: list[Path], out: Path) -> int:
    from deid.config import DeidRecipe
    from deid.dicom import get_identifiers, replace_identifiers

    out.mkdir(parents=True, exist_ok=True)
    recipe = DeidRecipe()  # deid's default dicom recipe
    names = [str(f) for f in files]
    ids = get_identifiers(names)
    replace_identifiers(
        dicom_files=names, deid=recipe, ids=ids, save=True, output_folder=str(out), overwrite=True
    )
    return len(files)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds for amana/dicognito")
    parser.add_argument("--keep", type=Path, help="keep the corpus and outputs here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amana-bench-")) if args.keep is None else args.keep
    try:
        print(f"corpus: {args.instances} CT-like instances 512x512 16-bit in {work}")
        files = make_corpus(work / "in", args.instances)
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"        {mb:.0f} MB, {mb / len(files):.2f} MB per file\n")
        # amana and dicognito alternate for --rounds rounds and keep their best round, so
        # that a burst of load on a shared machine does not decide the ratio; deid, an
        # order of magnitude slower, runs once.
        rates: dict[str, float] = {}
        runs: list[tuple[str, Callable[[Path], int]]] = [
            ("amana anonymize (command, ma-national)",
             lambda out: run_amana_cli(work / "in", out, work / "k.key")),
            ("amana engine in-process, 1 core", lambda out: run_amana_engine(files, out)),
            ("dicognito 0.19 (in-process)", lambda out: run_dicognito(files, out)),
        ]
        for round_number in range(args.rounds):
            # alternate the order; flush dirty pages first so that nobody pays for the
            # write-back of the corpus or of the previous tool's outputs
            for label, run in runs if round_number % 2 == 0 else runs[::-1]:
                os.sync()
                out = work / f"out-{len(rates)}-{round_number}-{label.split()[0]}"
                rate = timed(label, lambda run=run, out=out: run(out))
                rates[label] = max(rate, rates.get(label, 0.0))
                shutil.rmtree(out, ignore_errors=True)
        os.sync()
        rates["deid"] = timed("deid default recipe (in-process)",
                              lambda: run_deid(files, work / "out-deid"))
        rates["amana anonymize (command)"] = rates.pop("amana anonymize (command, ma-national)")
        rates["amana engine"] = rates.pop("amana engine in-process, 1 core")
        rates["dicognito"] = rates.pop("dicognito 0.19 (in-process)")
        print(f"\nbest of {args.rounds} round(s): " + ", ".join(
            f"{k} {v:.1f}/s" for k, v in rates.items()))
        fastest_peer = max(rates["dicognito"], rates["deid"])
        print()
        for label in ("amana anonymize (command)", "amana engine"):
            print(
                f"{label} / fastest peer: {rates[label] / fastest_peer:.2f}x "
                f"(dicognito {rates[label] / rates['dicognito']:.2f}x, "
                f"deid {rates[label] / rates['deid']:.2f}x)"
            )
        print("target: >= 2.00x the fastest peer")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
