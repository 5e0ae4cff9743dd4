"""How a language sorts names and writes times, numbers and dates in the reports.

Names sort with ICU's collator for the language (CLDR's Vietnamese tailoring puts "Đức Thọ"
after "Dung" and before "Vũ Quang", and "ă", "â", "ê", "ô", "ơ", "ư" after their base letters),
with numeric ordering on, so "Can Lộc 5" comes before "Can Lộc 15". Times are shown in Vietnam
time: the reader is a Vietnamese agency, whatever zone the scanning machine runs in. JSON keeps
ISO 8601 as recorded.
"""

from collections.abc import Callable
from datetime import date, datetime
from functools import cache

import icu

from attt.reports.base import Lang
from attt.scanner.models.base import in_vietnam, vietnam_day


@cache
def _collator(lang: Lang) -> icu.Collator:
    collator = icu.Collator.createInstance(icu.Locale("vi_VN" if lang == "vi" else "en_US"))
    collator.setAttribute(icu.UCollAttribute.NUMERIC_COLLATION, icu.UCollAttributeValue.ON)
    return collator


def name_key(lang: Lang) -> Callable[[str], bytes]:
    """A sort key for names in the language's alphabetical order, numbers by value."""
    collator = _collator(lang)
    return lambda text: bytes(collator.getSortKey(text))


def when(moment: datetime, lang: Lang) -> str:
    """Date and time to the minute, Vietnam time: `20/11/2026 08:00` in Vietnamese."""
    at = in_vietnam(moment)
    if lang == "vi":
        return at.strftime("%d/%m/%Y %H:%M (giờ Việt Nam)")
    return at.strftime("%Y-%m-%d %H:%M (UTC+07:00)")


def day(value: date | datetime, lang: Lang) -> str:
    """A date alone: dd/mm/yyyy in Vietnamese, ISO in English."""
    d = vietnam_day(value) if isinstance(value, datetime) else value
    return d.strftime("%d/%m/%Y") if lang == "vi" else d.isoformat()


def percent(fraction: float, lang: Lang) -> str:
    """`74,9 %` in Vietnamese (decimal comma), `74.9 %` in English."""
    text = f"{fraction * 100:.1f} %"
    return text.replace(".", ",") if lang == "vi" else text
