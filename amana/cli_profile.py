"""`amana profile ...`: steward tools (list, show, lint, diff, explain)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from amana.startup import load as load_settings
from anonymizer.engine import Deidentifier, ProfileError, load_profile
from anonymizer.explain import explain_cells, pixel_plan_rows, rule_label
from anonymizer.floor_check import FloorViolationError
from anonymizer.pixels.plan import pixel_plan_of_bytes
from anonymizer.pseudonyms import key_from_bytes
from anonymizer.rules import compile_profile, describe_tag

profile_app = typer.Typer(help="Steward tools for anonymization profiles.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _load(name: str) -> object:
    settings = load_settings()
    try:
        return load_profile(name, settings.profiles_dir)
    except ProfileError as exc:
        errors.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@profile_app.command("list")
def list_profiles() -> None:
    """Every profile in the profiles folder, with its version (digest of its content)."""
    settings = load_settings()
    table = Table()
    for column in ("name", "version", "extends", "options", "default"):
        table.add_column(column)
    for file in sorted(settings.profiles_dir.glob("*.yaml")):
        try:
            profile = load_profile(str(file), settings.profiles_dir)
        except ProfileError as exc:
            table.add_row(file.stem, "[red]invalid[/red]", "", str(exc), "")
            continue
        table.add_row(
            profile.name,
            profile.version,
            profile.extends or "",
            ", ".join(o.value for o in profile.options),
            "yes" if profile.name == settings.profile else "",
        )
    console.print(table)


@profile_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="profile name or YAML path")],
    full: Annotated[bool, typer.Option("--full", help="print the whole resolved profile")] = False,
) -> None:
    """The resolved profile: options, pseudonym settings, and the rules that are not K."""
    profile = _load(name)
    from anonymizer.profile_model import Profile

    assert isinstance(profile, Profile)
    if full:
        dumped = profile.model_dump(mode="json", exclude_defaults=False)
        console.print(yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True))
        return
    console.print(f"[bold]{profile.name}[/bold] version {profile.version}")
    console.print(profile.description)
    if profile.standard is not None:
        console.print(
            f"standard: {profile.standard.document} table {profile.standard.table}, "
            f"edition {profile.standard.edition}"
        )
    console.print(f"extends: {profile.extends or '-'}")
    console.print(f"options: {', '.join(o.value for o in profile.options) or '-'}")
    console.print(
        f"linkage: {' + '.join(profile.pseudonyms.linkage)}; date shift "
        f"{profile.pseudonyms.date_shift_days.min}..{profile.pseudonyms.date_shift_days.max} "
        "days"
    )
    compiled = compile_profile(profile)
    counts: dict[str, int] = {}
    for rule in compiled.exact.values():
        counts[rule.op.name] = counts.get(rule.op.name, 0) + 1
    console.print(
        "named attributes: "
        + ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
        + "; anything else: removed"
    )
    console.print(f"private: {len(compiled.private)} kept element(s), others removed")
    console.print(f"pixel policy: {'yes' if profile.pixel is not None else 'none (tag-only)'}")


@profile_app.command("lint")
def lint(file: Annotated[Path, typer.Argument(help="profile YAML file")]) -> None:
    """Validate a profile; on error print `file:line: reason` and exit 1. A profile below the
    floor (profiles/floor.yaml) gets one line per offending rule."""
    settings = load_settings()
    try:
        profile = load_profile(str(file), settings.profiles_dir)
    except FloorViolationError as exc:
        # every rule below the floor at once: one lint run, one round of fixes
        for each in exc.each:
            errors.print(str(each), markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    except ProfileError as exc:
        errors.print(str(exc))
        raise typer.Exit(1) from exc
    from archive.governance.profile_text import lint_problems

    problems = lint_problems(profile)
    for problem in problems:
        errors.print(f"{file}: {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(f"{file}: OK ({profile.name} version {profile.version})")


@profile_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="profile name or path")],
    b: Annotated[str, typer.Argument(help="profile name or path")],
) -> None:
    """Attributes whose effective operation differs between two profiles."""
    from anonymizer.profile_model import Profile

    first, second = _load(a), _load(b)
    assert isinstance(first, Profile) and isinstance(second, Profile)
    one, two = compile_profile(first), compile_profile(second)
    table = Table(title=f"{first.name} {first.version} → {second.name} {second.version}")
    for column in ("tag", "keyword", first.name, second.name):
        table.add_column(column)
    differences = 0
    for tag in sorted(set(one.exact) | set(two.exact)):
        left, right = one.exact.get(tag), two.exact.get(tag)
        if (left and (left.op, left.action)) != (right and (right.op, right.action)):
            differences += 1
            either = left or right
            keyword = either.keyword if either is not None else ""
            table.add_row(
                describe_tag(tag), keyword, escape(rule_label(left)), escape(rule_label(right))
            )
    if set(first.options) != set(second.options):
        console.print(
            f"options: {sorted(o.value for o in first.options)} → "
            f"{sorted(o.value for o in second.options)}"
        )
    console.print(table)
    console.print(f"{differences} attribute(s) differ")


@profile_app.command("conformance")
def conformance(
    name: Annotated[str, typer.Argument(help="profile name or path")],
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="write the table to this CSV file")
    ] = None,
) -> None:
    """The profile against PS3.15 Table E.1-1: per row, the table's action under the
    selected options, the action applied, the deciding option, and overrides."""
    from anonymizer.conformance import conformance_table, write_csv
    from anonymizer.profile_model import Profile

    chosen = _load(name)
    assert isinstance(chosen, Profile)
    rows = conformance_table(chosen)
    if csv_file is not None:
        write_csv(rows, csv_file)
        console.print(f"{len(rows)} rows written to {csv_file}")
        return
    table = Table(title=f"{chosen.name} {chosen.version} against Table E.1-1")
    for column in ("tag", "keyword", "table", "applied", "option", "operation", "override"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.tag, row.keyword, escape(row.table_action),
                      escape(row.applied_action), row.option or "", row.operation,
                      "yes" if row.override else "")
    console.print(table)
    overrides = sum(1 for row in rows if row.override)
    console.print(f"{len(rows)} rows; {overrides} override(s) stated in the profile files")


@profile_app.command("explain")
def explain(
    file: Annotated[Path, typer.Argument(help="one DICOM file")],
    profile: Annotated[str | None, typer.Option("--profile", help="profile name or path")] = None,
) -> None:
    """For one input: every attribute, before (identifying values masked) → action → after,
    then what the pixel step does to it.

    Uses a throwaway key: the pseudonyms shown are not the archive's.
    """
    from anonymizer.profile_model import Profile

    settings = load_settings()
    chosen = _load(profile or settings.profile)
    assert isinstance(chosen, Profile)
    engine = Deidentifier(chosen, key_from_bytes(secrets.token_bytes(32)))
    data = file.read_bytes()
    rows, outcome = engine.explain(data)
    table = Table(title=f"{file.name} under {chosen.name} {chosen.version}")
    for column in ("tag", "keyword", "VR", "before", "action", "after"):
        table.add_column(column, overflow="fold")
    for tag, vr, rule, before, after in rows:
        shown_before, shown = explain_cells(tag, vr, rule, before, after)
        table.add_row(
            describe_tag(tag),
            (rule.keyword if rule is not None else "") or _keyword(tag),
            vr,
            escape(shown_before),
            escape(rule_label(rule)),
            "[dim]removed[/dim]" if shown is None else escape(shown),
        )
    table.add_section()
    for label, text in pixel_plan_rows(pixel_plan_of_bytes(data, chosen.pixel)):
        table.add_row("", label, "", "", escape(text), "")
    console.print(table)
    if isinstance(outcome, Exception):
        console.print(f"[red]quarantined[/red]: {outcome}")
        raise typer.Exit(1)
    console.print(f"[green]archived[/green] as {outcome.facts.sop_instance_uid}")


def _keyword(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""


@profile_app.command("import")
def import_profile(
    source: Annotated[Path, typer.Argument(help="deid recipe or CTP anonymizer script")],
    kind: Annotated[str, typer.Option("--from", help="deid or ctp")],
    out: Annotated[
        Path | None, typer.Option("--out", help="draft YAML (default: <name>.yaml here)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="the draft's profile name")] = None,
) -> None:
    """Translate a deid recipe or a CTP DicomAnonymizer script into a profile draft that
    extends `floor`, with a report of every rule that could not be mapped and why."""
    import re

    from amana.profile_import import import_source
    from anonymizer.importers import write_draft
    from anonymizer.importers.draft import floor_from

    if kind not in ("deid", "ctp"):
        errors.print("--from is deid or ctp")
        raise typer.Exit(2)
    if not source.is_file():
        errors.print(f"{source}: no such file")
        raise typer.Exit(2)
    draft_name = name or (out.stem if out is not None else None)
    if draft_name is None:
        draft_name = re.sub(r"[^a-z0-9]+", "-", source.name.lower()).strip("-") or "imported"
    target = out if out is not None else Path(f"{draft_name}.yaml")
    try:
        floor = floor_from(load_settings().profiles_dir)
        builder = import_source(kind, source, draft_name, floor)
    except (ProfileError, ValueError) as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    written = write_draft(builder, target)
    for path in written:
        console.print(f"wrote {path}")
    console.print(
        f"mapped {len(builder.mapped)}, not mapped {len(builder.not_mapped)} "
        f"(refused by the floor: {len(builder.refused)} attribute(s)); see {written[-1]}"
    )
