"""The console's languages: English (the msgids), French and Arabic (right to left).

Catalogs are the .po files under locales/, compiled in memory when the console starts, so a
fresh clone installed with `pip install -e .` (or a wheel) needs no build step and no .mo
file can drift from its source. The language is the one the user picked (a cookie set by
the switch), else the browser's best match, else English.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "ar": "العربية"}
RIGHT_TO_LEFT = frozenset({"ar"})
DEFAULT = "en"
LANG_COOKIE = "amana_lang"


@dataclass(frozen=True)
class Language:
    code: str
    direction: str  # "ltr" or "rtl", the page's dir attribute
    gettext: Callable[[str], str]


def _compile(code: str) -> gettext.NullTranslations:
    po = resources.files("archive.console") / "locales" / code / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as source:
        catalog = read_po(source, locale=code)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def load_languages() -> dict[str, Language]:
    out: dict[str, Language] = {}
    for code in LANGUAGES:
        translations = gettext.NullTranslations() if code == DEFAULT else _compile(code)
        direction = "rtl" if code in RIGHT_TO_LEFT else "ltr"
        out[code] = Language(code, direction, translations.gettext)
    return out


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The picked language if it is one of ours, else the browser's highest-ranked one."""
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        code = tag.split("-")[0].lower()
        if code in LANGUAGES and quality > 0:
            ranked.append((-quality, position, code))
    return sorted(ranked)[0][2] if ranked else DEFAULT
