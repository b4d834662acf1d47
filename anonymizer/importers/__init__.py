"""Profile drafts from the tools stewards already have: deid recipes and CTP scripts.

`import_deid` and `import_ctp` build the draft in memory; `write_draft` writes it beside
its report (and its pixel rules under `pixel/` next to it, where the loader looks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from anonymizer.importers.draft import DraftBuilder, Floor

__all__ = ["DraftBuilder", "Floor", "import_ctp", "import_deid", "write_draft"]

_SCHEMA_LINE = "# yaml-language-server: $schema=schema/profile.schema.json\n"


def import_deid(recipe: Any, recipe_name: str, name: str, floor: Floor) -> DraftBuilder:
    """The draft of a deid recipe, given deid's parse of it (a DeidRecipe)."""
    from anonymizer.importers.deid_recipe import import_deid as fill

    return fill(recipe, recipe_name, DraftBuilder(name, f"deid recipe {recipe_name}", floor))


def import_ctp(source: Path, name: str, floor: Floor) -> DraftBuilder:
    """The draft of a CTP DicomAnonymizer script."""
    from anonymizer.importers.ctp_script import import_ctp as fill

    return fill(source, DraftBuilder(name, f"CTP script {source.name}", floor))


class _Dumper(yaml.SafeDumper):
    """Rules one per line (flow mappings), as the shipped profiles are written."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, object]) -> yaml.Node:
    flow = "tag" in data or "creator" in data
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)


def write_draft(builder: DraftBuilder, target: Path) -> list[Path]:
    """Write the draft at `target`, its pixel rules and its report; the paths written,
    the report last."""
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(builder.profile_document(), Dumper=_Dumper, sort_keys=False,
                     allow_unicode=True, width=100)
    header = (_SCHEMA_LINE + "# DRAFT imported by `amana profile import`: review it, and the "
              "report beside it, before use.\n")
    target.write_text(header + text, encoding="utf-8")
    written = [target]
    if builder.pixel_rules:
        pixel = target.parent / "pixel" / f"{builder.pixel_file_name}.yaml"
        pixel.parent.mkdir(exist_ok=True)
        pixel.write_text(yaml.safe_dump(builder.pixel_document(), sort_keys=False,
                                        allow_unicode=True, width=100), encoding="utf-8")
        written.append(pixel)
    report = target.with_name(f"{target.stem}.import-report.md")
    report.write_text(builder.report(), encoding="utf-8")
    written.append(report)
    return written
