"""The change log's filters as query parameters, the same on every surface (pages, Atom, iCalendar,
JSON API) and the same as the CLI's options: platform, target, action, link_type, status, since,
until, effective_from, effective_to, and q (text)."""

from __future__ import annotations

from datetime import date
from typing import Mapping

from monitor.extract.model import ACTIONS
from monitor.notify.render import WORDS
from monitor.store.repo import STATUSES, ChangeFilter

LINK_TYPES = tuple(WORDS["en"]["link"])
NAMES = ("platform", "target", "action", "link_type", "status", "since", "until", "effective_from", "effective_to",
         "q")


class BadFilter(ValueError):
    """A filter value that cannot mean anything; the message names the parameter."""


def _day(params: Mapping[str, str], key: str) -> date | None:
    value = (params.get(key) or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{key}: {value!r} is not a date (YYYY-MM-DD)") from None


def _choice(params: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str | None:
    value = (params.get(key) or "").strip()
    if not value:
        return None
    if value not in allowed:
        raise BadFilter(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return value


def parse(params: Mapping[str, str], default_status: str | None = None) -> ChangeFilter:
    """A ChangeFilter from query parameters; empty values (a form's untouched fields) mean "any"."""
    text = (params.get("q") or "").strip()
    if len(text) > 200:
        raise BadFilter("q: at most 200 characters")
    return ChangeFilter(
        platform=(params.get("platform") or "").strip().lower() or None,
        target=(params.get("target") or "").strip().lower() or None,
        action=_choice(params, "action", ACTIONS),
        since=_day(params, "since"), until=_day(params, "until"),
        effective_from=_day(params, "effective_from"), effective_to=_day(params, "effective_to"),
        status=_choice(params, "status", STATUSES + ("all",)) or default_status,
        link_type=_choice(params, "link_type", LINK_TYPES),
        text=text or None,
    )


def query(params: Mapping[str, str]) -> dict[str, str]:
    """The filter parameters of a request that are set, to carry them to another surface's link."""
    return {k: params[k] for k in NAMES if (params.get(k) or "").strip()}
