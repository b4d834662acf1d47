"""The conformance table of a profile against PS3.15 Table E.1-1.

One row per table row: the standard's Basic Profile action, the option cells, the action
the profile actually applies, the option that decided it, and whether the profile
overrides the table there (an override is a steward decision stated in a profile file).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from anonymizer.profile_model import Option, Profile
from anonymizer.rules import compile_profile, effective_action

PRIVATE_ROW = "(GGGG,EEEE) WHERE GGGG IS ODD"
OPTION_COLUMNS = tuple(option.value for option in Option)


@dataclass(frozen=True)
class ReferenceRow:
    tag: str
    name: str
    basic_profile: str
    options: dict[str, str]


@dataclass(frozen=True)
class ConformanceRow:
    tag: str
    keyword: str
    table_action: str
    applied_action: str
    option: str | None
    operation: str
    override: bool


def read_reference(path: Path) -> list[ReferenceRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            ReferenceRow(
                tag=row["tag"],
                name=row["name"],
                basic_profile=row["basic_profile"],
                options={c: row[c] for c in OPTION_COLUMNS if row[c]},
            )
            for row in csv.DictReader(handle)
        ]


def normalize_tag(tag: str) -> str:
    return tag.upper().replace("X", "x")


def conformance_table(profile: Profile) -> list[ConformanceRow]:
    compiled = compile_profile(profile)
    options = frozenset(profile.options)
    overrides = {rule.tag: rule for rule in profile.attributes}
    rows: list[ConformanceRow] = []
    for rule in profile.table:
        table_code, _ = effective_action(rule, options)
        applied = overrides.get(rule.tag, rule)
        code, option = effective_action(applied, options)
        compiled_rule = compiled.rule_for(_tag_value(rule.tag))
        rows.append(
            ConformanceRow(
                tag=rule.tag,
                keyword=rule.keyword or "",
                table_action=table_code,
                applied_action=code,
                option=option,
                operation=compiled_rule.op.name.lower() if compiled_rule else "remove",
                override=rule.tag in overrides,
            )
        )
    private_code = profile.private.options.get(Option.RETAIN_SAFE_PRIVATE)
    keeps = Option.RETAIN_SAFE_PRIVATE in options and private_code is not None
    rows.append(
        ConformanceRow(
            tag=PRIVATE_ROW,
            keyword="",
            table_action=private_code if keeps and private_code else profile.private.action,
            applied_action=private_code if keeps and private_code else profile.private.action,
            option=Option.RETAIN_SAFE_PRIVATE.value if keeps else None,
            operation="keep listed" if keeps else "remove",
            override=False,
        )
    )
    return rows


def _tag_value(tag: str) -> int:
    # patterns (60xx,3000) are looked up with x = 0, which the pattern rule matches
    return int(tag[1:5].replace("x", "0") + tag[6:10].replace("x", "0"), 16)


def write_csv(rows: list[ConformanceRow], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["tag", "keyword", "table_action", "applied_action", "option",
                         "operation", "override"])
        for row in rows:
            writer.writerow([row.tag, row.keyword, row.table_action, row.applied_action,
                             row.option or "", row.operation, "yes" if row.override else ""])
