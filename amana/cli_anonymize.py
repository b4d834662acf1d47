"""`amana anonymize IN... --out DIR`: the engine on files and folders, no services."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from amana.errors import QuarantineError
from amana.keys import ensure_key, load_key
from amana.settings import Settings
from anonymizer.engine import Deidentifier, ProfileError, load_profile
from anonymizer.paths import archive_relpath

console = Console(stderr=True)


def _files(inputs: list[Path]) -> Iterator[Path]:
    for item in inputs:
        if item.is_dir():
            for root, dirs, names in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith(".") and name != "DICOMDIR":
                        yield Path(root) / name
        else:
            yield item


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


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
) -> None:
    """De-identify files into OUT/<study>/<series>/<instance>.dcm (new UIDs only).

    Exit status 1 when any input was quarantined (listed with its reason), 2 on a usage
    error (missing key, bad profile).
    """
    settings = Settings()
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

    files = list(_files(inputs))
    archived = 0
    reasons: Counter[str] = Counter()
    quarantined: list[tuple[Path, str, str]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("de-identifying", total=len(files))
        for file in files:
            try:
                outcome = engine.deidentify(file.read_bytes())
            except QuarantineError as exc:
                reasons[exc.reason.value] += 1
                quarantined.append((file, exc.reason.value, exc.message))
            except OSError as exc:
                reasons["unreadable"] += 1
                quarantined.append((file, "unreadable", f"cannot read file: {exc.strerror}"))
            else:
                _write_atomic(out / archive_relpath(outcome.facts), outcome.data)
                archived += 1
            progress.advance(task)

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
        listing.add_column("input")
        listing.add_column("reason")
        listing.add_column("explanation")
        for file, reason, message in quarantined:
            listing.add_row(str(file), reason, message)
        Console().print(listing)
        raise typer.Exit(1)
