"""Date arithmetic on DICOM DA/DT values (shifting keeps intervals exact)."""

from __future__ import annotations

from datetime import date, timedelta


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA (YYYYMMDD, or legacy YYYY.MM.DD); None when it cannot be parsed."""
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    try:
        return (day + timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT; time, fraction and offset are kept (whole-day shift)."""
    text = value.strip()
    if len(text) < 4 or not text[:4].isdigit():
        return None
    if len(text) < 8 or not text[:8].isdigit():
        # only a year or year+month: shift the year-level value by the same number of days
        padded = text[:4] + (text[4:6] if len(text) >= 6 and text[4:6].isdigit() else "01") + "01"
        shifted = shift_da(padded, days)
        if shifted is None:
            return None
        return shifted[: 6 if len(text) >= 6 and text[4:6].isdigit() else 4] + text[
            6 if len(text) >= 6 and text[4:6].isdigit() else 4 :
        ]
    shifted = shift_da(text[:8], days)
    return None if shifted is None else shifted + text[8:]


def parse_da(value: str) -> date | None:
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def age_in_years(birth: date, at: date) -> int:
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def age_years_from_as(value: str) -> int | None:
    """Years in an AS value ('045Y'); days, weeks and months count as 0 years."""
    text = value.strip()
    if len(text) != 4 or not text[:3].isdigit() or text[3] not in "DWMY":
        return None
    return int(text[:3]) if text[3] == "Y" else 0


def decade_band(year: int) -> str:
    start = year - year % 10
    return f"{start}-{start + 9}"
