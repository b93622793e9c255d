"""Re-running the current extractor and lexicon over stored entries.

Users extend the lexicon and upgrade the extractor; the entries already stored are the cheapest
corpus there is. Changes already known are updated silently (an extractor upgrade is not news), and
a change found for the first time alerts only while its effective date is ahead or recent
(``extract.alert_window``), marked as found on re-extraction. An entry that no longer reports a change
stops counting for it, and a change no entry reports any more is withdrawn (kept, with its history).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Callable

from sqlalchemy import select

from monitor import clock
from monitor.app import App
from monitor.extract.model import Article
from monitor.store import repo
from monitor.store.models import Entry

log = logging.getLogger("monitor.reextract")
BATCH = 200


@dataclass
class ReextractReport:
    entries: int = 0
    with_changes: int = 0
    new_changes: int = 0
    new_mentions: int = 0
    updated: int = 0
    withdrawn_mentions: int = 0
    withdrawn_changes: int = 0


def reextract(app: App, since: date | None = None,
              progress: Callable[[int, int], None] | None = None) -> ReextractReport:
    hints = {s.name: s.platform for s in app.config.settings.sources}
    report = ReextractReport()
    with app.sessions() as s:
        stmt = select(Entry.id).order_by(Entry.id)
        if since is not None:
            stmt = stmt.where(Entry.discovered_at >= datetime.combine(since, time(), tzinfo=timezone.utc))
        ids = list(s.scalars(stmt))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        with app.sessions.begin() as s:
            now = clock.utcnow()
            entries = list(s.scalars(select(Entry).where(Entry.id.in_(chunk)).order_by(Entry.id)))
            found_by_entry = []
            for entry in entries:
                article = Article(id=str(entry.id), title=entry.title, body=entry.body,
                                  published=clock.as_utc(entry.published), lang=entry.lang, url=entry.url,
                                  platform_hint=hints.get(entry.source.name),
                                  watched=entry.guid.startswith("version:"))
                found = app.extractor.extract(article)
                entry.changes_found = len(found)
                found_by_entry.append((entry, found))
            repo.lock_platforms(s, {f.platform for _e, found in found_by_entry for f in found})
            for entry, found in found_by_entry:
                report.entries += 1
                report.with_changes += bool(found)
                still_found: set[int] = set()
                for f in found:
                    rec = repo.record_change(s, entry, f, now, found_by="reextract")
                    still_found.add(rec.change.id)
                    if rec.created:
                        report.new_changes += 1
                        app.planner.alert(s, rec.change, now)
                        log.info("change #%s found on re-extraction: %s %s (effective %s)", rec.change.id,
                                 f.platform, f.action, f.effective_date or "not stated")
                    elif rec.event is not None:
                        report.updated += 1   # recorded in the change's history, silently
                    elif rec.new_mention:
                        report.new_mentions += 1
                gone, withdrawn = repo.withdraw_mentions(s, entry, still_found, now)
                report.withdrawn_mentions += gone
                report.withdrawn_changes += len(withdrawn)
                for change in withdrawn:
                    log.info("change #%s withdrawn: the current extractor finds it in none of its entries "
                             "(%s %s)", change.id, change.platform, change.action)
        if progress:
            progress(min(start + BATCH, len(ids)), len(ids))
    return report
