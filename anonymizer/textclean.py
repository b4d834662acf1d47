"""`clean`: free text with the instance's identifying values and identifier patterns removed.

Works on French, Arabic and Latin text after `normalize`. What is removed becomes `***`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from anonymizer.identity import IdentifyingValues
from anonymizer.textnorm import normalize, strip_accents

REDACTED = "***"
# Longer free text is replaced whole: bounded work per element, whatever a sender puts in.
MAX_CLEANED_LENGTH = 65536

_MONTHS = (
    "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|"
    "novembre|décembre|decembre|january|february|march|april|may|june|july|august|"
    "september|october|november|december|jan|feb|fév|fev|mar|apr|avr|jun|jul|juil|aug|"
    "sep|sept|oct|nov|dec|déc|"
    "يناير|فبراير|مارس|ابريل|أبريل|ماي|مايو|يونيو|يونيوز|يوليوز|يوليو|غشت|اغسطس|أغسطس|"
    "شتنبر|سبتمبر|اكتوبر|أكتوبر|نونبر|نوفمبر|دجنبر|ديسمبر|كانون الثاني|شباط|آذار|نيسان|"
    "أيار|حزيران|تموز|آب|أيلول|تشرين الأول|تشرين الثاني|كانون الأول"
)
# Titles before a name, case-sensitive: "DR", "MR", "PR" in capitals are modalities, while
# "Dr", "Pr." and "Mme" introduce a person.
_TITLES = (
    r"(?-i:Dr\.?|DR\.|Docteur|docteur|DOCTEUR|Doctor|Pr\.|PR\.|Prof\.?|PROF\.|Professeur|"
    r"professeur|PROFESSEUR|Mme\.?|MME\.?|Madame|madame|MADAME|Mlle\.?|MLLE\.?|Mademoiselle|"
    r"Monsieur|monsieur|MONSIEUR|M\.|Mr\.?|Mrs\.?|Ms\.|Lalla|LALLA)|الدكتور|الدكتورة|دكتور|"
    r"الأستاذ|الاستاذ|الأستاذة|السيد|السيدة"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH = r"(?:0?[1-9]|1[0-2])"
# Identifiers that are not in the header: patterns, in the order they are tried.
_PATTERNS = [
    r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail (from a token start: linear)
    r"(?:https?://|www\.)\S+",  # URLs
    r"(?:\+|00)\d{1,3}[\s.\-()]*(?:\d[\s.\-()]*){6,}\d",  # international phone
    r"(?<!\d)0\d(?:[\s.\-]?\d\d){4}(?!\d)",  # national phone (0X XX XX XX XX)
    rf"(?<![\w.]){_DAY}\s*[/\-]\s*{_MONTH}\s*[/\-]\s*(?:\d{{4}}|\d{{2}})(?![\w.])",  # 12/03/24
    rf"(?<![\w.]){_DAY}\.{_MONTH}\.\d{{4}}(?![\w.])",  # 12.03.2024
    rf"(?<![\w.])\d{{4}}\s*[/.\-]\s*{_MONTH}\s*[/.\-]\s*{_DAY}(?![\w.])",  # 2024-03-12
    rf"(?<!\w)(?:\d{{1,2}}(?:er)?\s+)?(?:{_MONTHS})\.?\s+\d{{4}}(?!\w)",  # 12 mars 2024
    r"(?<!\w)[A-Z]{1,2}\d{5,7}(?!\w)",  # CIN-like national identity numbers
    r"(?<!\w)\d{5,}(?!\w)",  # long numbers: record numbers, IPP, accession
    r"(?<!\w)(?:ipp|nip|cin|mrn)\s*[:#°]?\s*[\w\-/]*\d[\w\-/]*",
    r"(?<!\w)(?:id|dossier|n°)\s*[:#°]\s*[\w\-/]+",
    rf"(?<!\w)(?:{_TITLES})\s*[^\W\d_][\w'\-]+(?:\s+[^\W\d_][\w'\-]+)?",  # Dr Xxx Yyy
    r"(?<!\w)\d+\s*,?\s*(?:rue|avenue|av\.|bd|boulevard|lot|lotissement|résidence|residence|"
    r"hay|derb|quartier|street|road|شارع|زنقة|حي|درب|اقامة|إقامة)(?!\w)[^,;\n]*",  # addresses
]
_GENERIC = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


@lru_cache(maxsize=2048)
def _values_regex(values: tuple[str, ...]) -> re.Pattern[str] | None:
    if not values:
        return None
    ordered = sorted(values, key=len, reverse=True)
    alternatives = "|".join(re.escape(v) for v in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class TextCleaner:
    """Built once per instance from its identifying values."""

    def __init__(self, found: IdentifyingValues) -> None:
        values: set[str] = set()
        for value in (*found.names, *found.identifiers):
            if len(value) >= 2:
                values.add(value)
                values.add(strip_accents(value))
        for day in found.dates:
            values.update(_date_forms(day))
        self._own = _values_regex(tuple(sorted(values)))

    def clean(self, text: str) -> str:
        if not text:
            return text
        if len(text) > MAX_CLEANED_LENGTH:
            return REDACTED  # no legitimate descriptor is this long; never regex it

        result = normalize(text)
        if self._own is not None:
            result = self._own.sub(REDACTED, result)
            # accents dropped in the text but not in the header (or the reverse)
            plain = strip_accents(result)
            if plain != result and self._own.search(plain):
                result = self._own.sub(REDACTED, plain)
        return _GENERIC.sub(REDACTED, result)


def _date_forms(day: str) -> list[str]:
    """The ways people write a date: DICOM, day first (Morocco, France), ISO, and month first
    (US forms, as printed by some devices), with and without leading zeros."""
    y, m, d = day[:4], day[4:6], day[6:8]
    forms = {day, f"{d}/{m}/{y}", f"{d}-{m}-{y}", f"{d}.{m}.{y}", f"{y}-{m}-{d}", f"{y}/{m}/{d}",
             f"{m}/{d}/{y}"}
    if m.isdigit() and d.isdigit():
        mm, dd = str(int(m)), str(int(d))
        forms.update({f"{dd}/{mm}/{y}", f"{dd}.{mm}.{y}", f"{dd}-{mm}-{y}", f"{mm}/{dd}/{y}"})
    return sorted(forms)


def date_forms(day: str) -> list[str]:
    return _date_forms(day)
