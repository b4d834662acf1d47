"""`amana anonymize IN... --out DIR`: the engine on files and folders, no services."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path, PurePath
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from amana.errors import QuarantineError
from amana.keys import ensure_key, load_key
from amana.preview_files import PreviewWriteError, input_names, prepare_folder, write_private
from amana.startup import load as load_settings
from anonymizer.engine import Deidentifier, Profile, ProfileError, load_profile
from anonymizer.outcome import Outcome, PseudonymKey
from anonymizer.paths import archive_relpath

console = Console(stderr=True)
ARCHIVED = "archived"


def _files(inputs: list[Path]) -> Iterator[tuple[Path, PurePath]]:
    """Each input file with its name relative to what was named (a folder's files keep
    their path inside it; a file named alone is its own name)."""
    for item in inputs:
        if item.is_dir():
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith(".") and name != "DICOMDIR":
                        path = Path(root) / name
                        yield path, PurePath(path.relative_to(item))
        else:
            yield item, PurePath(item.name)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # per-process name: two inputs holding the same instance may be written at once
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


# Per-process engine for --jobs > 1: built once in each worker by `_init_worker`.
_engine: Deidentifier | None = None
_out: Path | None = None


def _init_worker(profile: Profile, key: PseudonymKey, out: Path) -> None:
    global _engine, _out
    _engine = Deidentifier(profile, key)
    _out = out


def _process(file: Path) -> tuple[str, str, str]:
    """(input, status or reason code, message) for one input; writes the output itself so
    that only a few short strings cross the process boundary."""
    assert _engine is not None and _out is not None
    return _one(_engine, _out, file)


def _one(engine: Deidentifier, out: Path, file: Path) -> tuple[str, str, str]:
    try:
        outcome = engine.deidentify(file.read_bytes())
    except QuarantineError as exc:
        return str(file), exc.reason.value, exc.message
    except OSError as exc:
        return str(file), "unreadable", f"cannot read file: {exc.strerror}"
    return _store(out, file, outcome)


def _store(out: Path, file: Path, outcome: Outcome) -> tuple[str, str, str]:
    try:
        _write_atomic(out / archive_relpath(outcome.facts), outcome.data)
    except OSError as exc:
        return str(file), "write_error", f"cannot write the output: {exc.strerror}"
    return str(file), ARCHIVED, ""


def _write_previews(
    files: list[tuple[Path, PurePath]], engine: Deidentifier, folder: Path, out: Path
) -> list[tuple[str, str, str]]:
    """De-identify `files` into `out` as `_one` does, and picture each run for the
    steward: one PNG per frame the pixel step read, named after the input
    (`<name>-frame-<n>.png`, a folder's files under their folders). The "after" side is the
    very file written to `out`. The pictures show the patient's burned-in text and the
    words OCR read: files of mode 0600 in folders of mode 0700 (preview_files.py); the
    console gets counts, never a word. Serial: a preview run is a steward's sample."""
    from anonymizer.pixels.preview import preview_instance

    try:
        prepare_folder(folder)
    except (OSError, PreviewWriteError) as exc:
        console.print(f"[red]preview folder:[/red] {exc}")
        raise typer.Exit(2) from exc
    results: list[tuple[str, str, str]] = []
    written = failed = 0
    names = input_names(relative for _, relative in files)
    for (file, relative), name in zip(files, names, strict=True):
        try:
            data = file.read_bytes()
        except OSError as exc:
            results.append((str(file), "unreadable", f"cannot read file: {exc.strerror}"))
            continue
        preview = preview_instance(engine, data, str(relative))
        if preview.archived is not None:
            results.append(_store(out, file, preview.archived))
        elif preview.quarantine is not None:
            error = preview.quarantine
            results.append((str(file), error.reason.value, error.message))
        for picture in preview.frames:
            suffix = "" if preview.outcome == "archived" else "-quarantined"
            target = name.with_name(f"{name.name}-frame-{picture.frame}{suffix}.png")
            try:
                write_private(folder, target, picture.png)
                written += 1
            except (OSError, PreviewWriteError) as exc:
                failed += 1
                console.print(f"[red]preview not written:[/red] {exc}")
    console.print(f"{written} preview images in {folder} (mode 0600, named after the inputs)")
    if failed:
        console.print(f"[red]{failed} previews could not be written[/red]")
    return results


def anonymize(
    inputs: Annotated[
        list[Path], typer.Argument(help="DICOM files or folders (searched recursively)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    profile: Annotated[
        str | None, typer.Option("--profile", help="profile name or YAML path")
    ] = None,
    create_key: Annotated[
        bool, typer.Option("--create-key", help="create the key file (0600) if it is missing")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=0, help="worker processes (0: one per CPU)")
    ] = 0,
    preview: Annotated[
        Path | None,
        typer.Option(
            "--preview",
            help="also write before/after PNGs of examined images into this folder (0700; "
            "files 0600, named after the inputs): boxes numbered, the words OCR read listed",
        ),
    ] = None,
) -> None:
    """De-identify files into OUT/<study>/<series>/<instance>.dcm (new UIDs only).

    Tag-only profiles never decode Pixel Data; outputs do not depend on --jobs. Exit status
    1 when any input was quarantined (listed with its reason), 2 on a usage error (missing
    key, bad profile).
    """
    settings = load_settings()
    key_path = settings.key_path
    if not key_path.exists() and not create_key:
        console.print(
            f"[red]No pseudonymization key at {key_path}.[/red] Set AMANA_KEY_FILE to the "
            "key of this archive, or pass --create-key to create a new one (pseudonyms made "
            "with a new key do not link to earlier ones)."
        )
        raise typer.Exit(2)
    key = ensure_key(key_path) if create_key else load_key(key_path)
    try:
        chosen = load_profile(profile or settings.profile, settings.profiles_dir)
    except ProfileError as exc:
        console.print(f"[red]profile error:[/red] {exc}")
        raise typer.Exit(2) from exc
    engine = Deidentifier(chosen, key)
    missing = [p for p in inputs if not p.exists()]
    if missing:
        console.print(f"[red]not found:[/red] {', '.join(str(p) for p in missing)}")
        raise typer.Exit(2)

    named = list(_files(inputs))
    files = [file for file, _ in named]
    if preview is not None and chosen.pixel is None:
        console.print(
            f"profile {chosen.name} has no pixel step: its outputs keep every pixel as "
            "received; no preview written"
        )
        preview = None
    if preview is not None:
        results = _write_previews(named, engine, preview, out)
    else:
        results = _anonymize_all(files, engine, chosen, key, out, jobs)
    _report(chosen, results)


def _anonymize_all(
    files: list[Path],
    engine: Deidentifier,
    chosen: Profile,
    key: PseudonymKey,
    out: Path,
    jobs: int,
) -> list[tuple[str, str, str]]:
    workers = jobs or os.cpu_count() or 1
    workers = max(1, min(workers, len(files) // 8 or 1))  # small runs: no pool start-up
    results: list[tuple[str, str, str]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("de-identifying", total=len(files))
        if workers == 1:
            for file in files:
                results.append(_one(engine, out, file))
                progress.advance(task)
        else:
            with ProcessPoolExecutor(
                workers, initializer=_init_worker, initargs=(chosen, key, out)
            ) as pool:
                for result in pool.map(_process, files, chunksize=8):
                    results.append(result)
                    progress.advance(task)
    return results


def _report(chosen: Profile, results: list[tuple[str, str, str]]) -> None:
    archived = sum(1 for _, status, _ in results if status == ARCHIVED)
    reasons = Counter(status for _, status, _ in results if status != ARCHIVED)
    quarantined = [
        (Path(f), status, message) for f, status, message in results if status != ARCHIVED
    ]

    summary = Table(title=f"amana anonymize — profile {chosen.name} {chosen.version}")
    summary.add_column("result")
    summary.add_column("count", justify="right")
    summary.add_row("archived", str(archived))
    summary.add_row("quarantined", str(len(quarantined)))
    for reason, count in sorted(reasons.items()):
        summary.add_row(f"  {reason}", str(count))
    Console().print(summary)
    if quarantined:
        listing = Table(title="quarantined inputs (kept where they are)")
        listing.add_column("input", overflow="fold")
        listing.add_column("reason")
        listing.add_column("explanation")
        for file, reason, message in quarantined:
            listing.add_row(str(file), reason, message)
        Console().print(listing)
        raise typer.Exit(1)
