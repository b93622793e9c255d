"""Effective dates in Chinese and English, resolved against the publication date.

Measured before writing this (see README, "Extraction"): ``dateparser`` reads "3月1日" as a duration
("3 months 1 day"), and ``jionlp`` resolves it correctly but costs ~200 MB and ~15 ms per article.
The forms a policy announcement uses are few and regular, so they are parsed here by rules, only
inside candidate sentences, with the year of a year-less date chosen nearest the publication date.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, timedelta

_DIGIT = re.compile(r"\d")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_WEEKDAY_ZH = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_WEEKDAY_EN = {d.lower(): i for i, d in enumerate(calendar.day_name)}

_MON = r"(January|February|March|April|May|June|July|August|September|October|November|December|" \
       r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
_ZH_FULL = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_ISO = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_ZH_REL_YEAR = re.compile(r"(明年|今年|去年)\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_ZH_MD = re.compile(r"(?<![\d年])(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
_ZH_TODAY = re.compile(r"即日起|即日开始|今日起|今天起|即刻起|立即生效|即时生效|即日生效|当日生效|当天生效|从今天开始|今日开始|"
                       r"从现在开始")
_ZH_TODAY_BARE = re.compile(r"今天|今日(?!头条)")  # 今日头条 is a product, not a day
_ZH_YESTERDAY = re.compile(r"昨天|昨日")
_ZH_TOMORROW = re.compile(r"明日起|明天起|明天开始|次日起|次日生效")
_ZH_WEEKDAY = re.compile(r"(?<![下上本这])(?:周|星期|礼拜)([一二三四五六日天])")
_ZH_NEXT_WEEK = re.compile(r"下周([一二三四五六日天])")
_ZH_MONTH_END = re.compile(r"(本月底|月底前|本月末)")
_EN_MD = re.compile(_MON + r"\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?(?!\d)", re.I)
_EN_DM = re.compile(r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MON + r"(?:,?\s+(\d{4}))?(?!\d)", re.I)
_EN_TODAY = re.compile(r"effective immediately|starting today|as of today|from today|beginning today|"
                       r"effective today|\bstarting now\b|\bfrom now on\b", re.I)
_EN_TODAY_BARE = re.compile(r"(?<![.\w/])today\b(?!\.\w)", re.I)  # a day, not a start; not "Archive.today"
_EN_YESTERDAY = re.compile(r"\byesterday\b", re.I)
_EN_ON_WEEKDAY = re.compile(r"(?<!next )(?<!coming )\b(?:(?:on|this|last)\s+)?(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")
_EN_TOMORROW = re.compile(r"(?:starting|from|beginning|as of)\s+tomorrow", re.I)
_EN_NEXT_WD = re.compile(r"(?:next|this coming)\s+(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)", re.I)
# Words right after (zh) or right before (en) a date that mark it as the start of the rule.
# (the first day of a range, "3月1日至3月31日", is a start too)
_ZH_START_AFTER = re.compile(r"^\s*(?:\d{1,2}[:：]\d{2}\s*)?(?:起|开始|生效|零时|0时|正式|前(?!后)|(?:至|到|—|-|~)\s*(?:\d{4}\s*年\s*)?\d{1,2}\s*月)")
_ZH_START_BEFORE = re.compile(r"(?:将于|将在|将从|自|从)\s*$")
_EN_START_BEFORE = re.compile(r"(?:from|starting|effective|as of|beginning|begins|until|takes? effect|go(?:es)? into effect)\s*(?:on\s*)?$", re.I)


# A date that only says when a post was made or what caused a change: an embedded tweet's signature
# "(@handle) August 15, 2023", "following … salute on Monday", "after the ruling on Tuesday".
_SPEECH_BEFORE = re.compile(r"\b(?:said|says|told|reported|confirmed|wrote)(?:\s+(?:on|late|early|this))?\s*$",
                            re.I)
_SPEECH_AFTER = re.compile(r"^\)?(?:\s*\([^)]{3,20}\))?\s*,?\s*(?:that\s+)?(?:said|says|told|reported|confirmed)\b",
                           re.I)
_ZH_SAID_AFTER = re.compile(r"^\s*(?:[上下]午|晚间|晚上|早间|凌晨)?\s*(?:宣布|表示|称|发布|发文|透露|回应|证实|公告|通知|发表)")
_POSTED_BEFORE = re.compile(r"\(@\w+\)\s*$")
# (a word or more between, so "after March 1" itself, a start, is not a cause)
_CAUSE_BEFORE = re.compile(r"\b(?:following|after|amid)\s+[^,;.\d]{3,80}$", re.I)
_DATELINE_AFTER = re.compile(r"^\s*(?:消息|讯|电|报道|[—–]|[,，]\s*据|[(（]\s*(?:Reuters|AP|AFP|Bloomberg|Xinhua|新华社|记者)|"
                             r"(?:上午|下午|晚间|晚上|中午|凌晨)|\s*\d{1,2}[:：]\d{2}\s*(?:消息|讯))", re.I)


#: The reference day callers pass when the publication date is unknown; only dates that carry their
#: own year are trusted then.
UNKNOWN = date(1970, 1, 1)


@dataclass(frozen=True)
class FoundDate:
    value: date
    start: int
    marked: bool  # explicitly the start of a rule ("起", "starting")
    explicit_year: bool
    relative: bool = False  # a day named relative to the report ("昨日", "on Tuesday", "today")
    said: bool = False  # the day something was said or reported ("said Monday", "reported on Tuesday")
    deadline: bool = False  # marked as a deadline ("9月17日前") rather than a start ("3月1日起")


def month_number(name: str) -> int | None:
    """1..12 for an English month name or abbreviation, None otherwise."""
    return _MONTHS.get(name.lower().rstrip("."))


def _safe(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _nearest_year(month: int, day: int, ref: date, lean: int) -> date | None:
    """The year that puts month/day nearest ``ref``; ``lean`` > 0 prefers the future, < 0 the past."""
    best: tuple[float, date] | None = None
    for y in (ref.year - 1, ref.year, ref.year + 1):
        d = _safe(y, month, day)
        if d is None:
            continue
        delta = (d - ref).days
        cost = float(abs(delta))
        if lean > 0 and delta < 0 or lean < 0 and delta > 0:
            cost *= 1.5
        if best is None or cost < best[0]:
            best = (cost, d)
    return best[1] if best else None


def _weekday_near(ref: date, weekday: int, lean: int) -> date:
    """A bare weekday ("on Sunday", "周日") in a report is the latest one on or before the publication
    date; in an announcement of what will happen, the next one on or after it."""
    if lean < 0:
        return ref - timedelta(days=(ref.weekday() - weekday) % 7)
    return ref + timedelta(days=(weekday - ref.weekday()) % 7)


def _marked_zh(text: str, end: int, start: int | None = None) -> bool:
    return bool(_ZH_START_AFTER.match(text[end:end + 8])) or (
        start is not None and bool(_ZH_START_BEFORE.search(text[max(0, start - 4):start])))


def _marked_en(text: str, start: int) -> bool:
    return bool(_EN_START_BEFORE.search(text[max(0, start - 16):start]))


def _not_the_rule(text: str, start: int, end: int) -> bool:
    """English dates that tell when a post was made or what caused a change, never when a rule applies."""
    before = text[max(0, start - 90):start]
    return bool(_POSTED_BEFORE.search(before) or _CAUSE_BEFORE.search(before))


def find_dates(sentence: str, ref: date, lean: int = 1) -> tuple[FoundDate, ...]:
    """Every date expression in ``sentence``, resolved against ``ref`` (the publication date).

    Cached: the rules and the decision layer ask about the same sentences of an article several
    times over."""
    return _find_dates(sentence, ref, lean)


@lru_cache(maxsize=2048)
def _find_dates(sentence: str, ref: date, lean: int) -> tuple[FoundDate, ...]:
    text = sentence.translate(_FULLWIDTH)
    found: list[FoundDate] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], value: date | None, marked: bool, explicit_year: bool, relative: bool = False
            ) -> None:
        if value is None or any(m.start() < e and s < m.end() for s, e in taken):
            return
        if not marked and _not_the_rule(text, m.start(), m.end()):
            taken.append((m.start(), m.end()))
            return
        if not marked and _DATELINE_AFTER.match(text[m.end():m.end() + 12]):
            taken.append((m.start(), m.end()))
            return  # "7月8日消息", "June 29 (Reuters)", "9月9日下午…召开": when it was said, not when it applies
        taken.append((m.start(), m.end()))
        found.append(FoundDate(value, m.start(), marked, explicit_year, relative,
                               bool(_SPEECH_BEFORE.search(text[max(0, m.start() - 30):m.start()])
                                    or _SPEECH_AFTER.match(text[m.end():m.end() + 40])),
                               marked and text[m.end():m.end() + 2].lstrip().startswith("前")))

    # Most sentences rule out whole families at once: no digit, no Chinese, or no Latin letter.
    digit, han, latin = bool(_DIGIT.search(text)), bool(_HAN.search(text)), bool(_LATIN.search(text))
    for m in (_ZH_FULL.finditer(text) if digit and han else ()):
        add(m, _safe(int(m[1]), int(m[2]), int(m[3])), _marked_zh(text, m.end(), m.start()), True)
    for m in (_ISO.finditer(text) if digit else ()):
        add(m, _safe(int(m[1]), int(m[2]), int(m[3])), _marked_zh(text, m.end()) or _marked_en(text, m.start()), True)
    for m in (_ZH_REL_YEAR.finditer(text) if digit and han else ()):
        year = ref.year + {"明年": 1, "今年": 0, "去年": -1}[m[1]]
        # 今年/明年 count from the report: a year of their own only when the report's year is known
        add(m, _safe(year, int(m[2]), int(m[3])), _marked_zh(text, m.end(), m.start()), ref != UNKNOWN)
    for m in (_ZH_MD.finditer(text) if digit and han else ()):
        add(m, _nearest_year(int(m[1]), int(m[2]), ref, lean), _marked_zh(text, m.end(), m.start()), False)
    for m in (_ZH_TODAY.finditer(text) if han else ()):
        add(m, ref, True, False, True)
    for m in (_ZH_TODAY_BARE.finditer(text) if han else ()):
        add(m, ref, False, False, True)
    for m in (_ZH_YESTERDAY.finditer(text) if han else ()):
        add(m, ref - timedelta(days=1), _marked_zh(text, m.end()), False, True)
    for m in (_ZH_TOMORROW.finditer(text) if han else ()):
        add(m, ref + timedelta(days=1), True, False, True)
    for m in (_ZH_NEXT_WEEK.finditer(text) if han else ()):
        monday_next = ref + timedelta(days=7 - ref.weekday())
        add(m, monday_next + timedelta(days=_WEEKDAY_ZH[m[1]]), _marked_zh(text, m.end()), False, True)
    for m in (_ZH_MONTH_END.finditer(text) if han else ()):
        add(m, date(ref.year, ref.month, calendar.monthrange(ref.year, ref.month)[1]), True, False)
    for m in (_ZH_WEEKDAY.finditer(text) if han else ()):
        # "周五宣布" names the day something was said: the one just past, whatever the sentence announces
        said = bool(_ZH_SAID_AFTER.match(text[m.end():m.end() + 8]))
        add(m, _weekday_near(ref, _WEEKDAY_ZH[m[1]], -1 if said else lean), _marked_zh(text, m.end()), False, True)
    for m in (_EN_MD.finditer(text) if digit and latin else ()):
        month, day = _MONTHS[m[1].lower().rstrip(".")], int(m[2])
        value = _safe(int(m[3]), month, day) if m[3] else _nearest_year(month, day, ref, lean)
        add(m, value, _marked_en(text, m.start()), bool(m[3]))
    for m in (_EN_DM.finditer(text) if digit and latin else ()):
        month, day = _MONTHS[m[2].lower().rstrip(".")], int(m[1])
        value = _safe(int(m[3]), month, day) if m[3] else _nearest_year(month, day, ref, lean)
        add(m, value, _marked_en(text, m.start()), bool(m[3]))
    for m in (_EN_TOMORROW.finditer(text) if latin else ()):
        add(m, ref + timedelta(days=1), True, False, True)
    for m in (_EN_TODAY.finditer(text) if latin else ()):
        add(m, ref, True, False, True)
    for m in (_EN_TODAY_BARE.finditer(text) if latin else ()):
        add(m, ref, False, False, True)
    for m in (_EN_YESTERDAY.finditer(text) if latin else ()):
        add(m, ref - timedelta(days=1), False, False, True)
    for m in (_EN_ON_WEEKDAY.finditer(text) if latin else ()):
        # A bare weekday in a report is the one just past ("Facebook late Monday said it will…");
        # an upcoming one is written "next Monday" (below).
        add(m, _weekday_near(ref, _WEEKDAY_EN[m[1].lower()], -1), _marked_en(text, m.start()), False, True)
    for m in (_EN_NEXT_WD.finditer(text) if latin else ()):
        wd = _WEEKDAY_EN[m[1].lower()]
        ahead = (wd - ref.weekday()) % 7 or 7
        add(m, ref + timedelta(days=ahead), _marked_en(text, m.start()), False, True)
    found.sort(key=lambda f: f.start)
    return tuple(found)


def best_date(sentence: str, ref: date | None, lean: int = 1) -> FoundDate | None:
    """The date a rule in ``sentence`` takes effect (a date marked as a start wins), or None.

    Without a publication date, only dates that carry their own year can be trusted.
    """
    dates = list(find_dates(sentence, ref or UNKNOWN, lean))
    if ref is None:
        dates = [d for d in dates if d.explicit_year]
    if not dates:
        return None
    marked = [d for d in dates if d.marked]
    return (marked or dates)[0]


def effective_date(sentence: str, ref: date | None, lean: int = 1) -> date | None:
    found = best_date(sentence, ref, lean)
    return found.value if found else None


_ZH_DATELINE = re.compile(r"(?<![\d年])(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*(?:消息|讯|电)")
_EN_DATELINE = re.compile(_MON + r"\s+(\d{1,2})\s*\((?:Reuters|AP|AFP|Bloomberg|Xinhua)\)", re.I)


def dateline(sentence: str, ref: date) -> date | None:
    """The date of a news dateline ("网易科技讯 6月6日消息", "OTTAWA, June 29 (Reuters)"), the year
    taken nearest ``ref`` looking back; None when the sentence has none."""
    text = sentence.translate(_FULLWIDTH)
    m = _ZH_DATELINE.search(text)
    if m:
        return _nearest_year(int(m[1]), int(m[2]), ref, -1)
    m = _EN_DATELINE.search(text)
    if m:
        return _nearest_year(_MONTHS[m[1].lower().rstrip(".")], int(m[2]), ref, -1)
    return None
