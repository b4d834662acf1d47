"""Reading the sources of `amana profile import`: deid recipes through deid's own parser.

deid lives here, in the shell, rather than in the core: importing it reads the
environment (its log level). The core maps the parse it is handed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anonymizer.importers import DraftBuilder, Floor, import_ctp, import_deid


class SourceError(ValueError):
    """The source could not be read as the kind it was said to be."""


def read_deid_recipe(path: Path) -> Any:
    """deid's parse of the recipe at `path` (a `deid.config.DeidRecipe`)."""
    from deid.logger import bot

    bot.level = 0  # deid logs every line it reads at debug level otherwise
    from deid.config import DeidRecipe

    try:
        return DeidRecipe(str(path))
    except SystemExit as exc:  # deid's parser exits on a malformed line
        raise SourceError(f"{path}: deid could not parse the recipe") from exc


def import_source(kind: str, source: Path, name: str, floor: Floor) -> DraftBuilder:
    """The draft of `source`: a deid recipe (`kind` "deid") or a CTP script ("ctp")."""
    if kind == "deid":
        return import_deid(read_deid_recipe(source), source.name, name, floor)
    if kind == "ctp":
        return import_ctp(source, name, floor)
    raise SourceError(f"unknown source kind {kind!r} (deid or ctp)")
