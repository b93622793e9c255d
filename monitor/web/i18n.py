"""The web pages' words in Chinese and English, and which language a visitor reads.

The language comes from ``?lang=`` (the switch in the page header, remembered in a cookie), else
the cookie, else the browser's ``Accept-Language``; Chinese when nothing says otherwise, as for the
notifiers."""

from __future__ import annotations

from typing import Mapping

LANGS = ("zh", "en")
DEFAULT = "zh"

UI: dict[str, dict[str, str]] = {
    "zh": {
        "nav_changes": "变更记录", "nav_upcoming": "即将生效", "nav_sources": "信息源", "nav_api": "API",
        "switch": "English", "tagline": "平台链接政策变更监测",
        "title_changes": "链接政策变更记录", "title_upcoming": "即将生效的变更", "title_sources": "信息源状态",
        "platform": "平台", "action": "动作", "change": "变更", "link_type": "链接类型", "status": "状态", "targets": "涉及",
        "effective": "生效日期", "effective_from": "生效日期从", "effective_to": "至", "text": "搜索",
        "text_hint": "证据、标题、平台…", "any": "全部", "filter": "筛选", "clear": "清除",
        "status_default": "记录中（不含已排除）", "status_all": "全部（含已排除）",
        "sources_n": "来源", "first_seen": "发现于", "updated": "更新于", "no_changes": "没有符合条件的变更。",
        "older": "更早的变更 →", "newest": "← 最新", "later": "更晚的日期 →", "confidence": "置信度", "found_by": "发现方式",
        "found_poll": "轮询", "found_reextract": "重新提取",
        "evidence": "证据", "in_article": "在原文中", "full_article": "显示全文",
        "not_verbatim": "这句话在保存的原文中没有逐字出现（可能经过繁简转换或改写）。",
        "article_pruned": "原文已按保留策略（[retention]）删除；证据句、标题、链接和日期仍保留。",
        "sources_title": "报道来源", "history": "更新记录", "no_history": "暂无更新。",
        "deliveries": "通知与提醒", "no_deliveries": "没有要发送的消息。", "notifier": "通知渠道",
        "kind": "类型", "attempts": "尝试次数", "next_attempt": "下次尝试", "sent_at": "发送时间",
        "last_error": "最近错误", "corrections": "纠正错误", "not_a_change": "这不是链接政策变更",
        "correct": "提交更正", "right_date": "正确的生效日期", "no_date": "原文没有给出日期",
        "right_platform": "正确的平台", "right_action": "正确的动作", "unchanged": "不变", "token": "访问令牌",
        "read_only": "只读：服务器没有配置 [http] token，不能在网页上纠正。",
        "corrections_hint": "纠正会立即生效，已收到通知的人会收到更新，与 policy-monitor label 相同。",
        "recorded": "已记录", "week_of": "{date} 这一周", "nothing_upcoming": "没有即将生效的变更。",
        "name": "名称", "source_kind": "类型", "last_poll": "上次轮询", "next_poll": "下次轮询",
        "entries": "条目", "changes": "变更", "error": "错误", "subscribe": "订阅",
        "atom": "Atom 订阅（当前筛选）", "calendar": "生效日期日历（iCalendar）",
        "api_title": "JSON API", "not_found": "找不到页面", "no_change": "没有编号为 {id} 的变更。",
        "bad_request": "请求有误", "server_error": "服务器出错", "today": "今天", "page_error": "出错了",
        "withdrawn_note": "这条记录已被排除（人工判断或重新提取后不再认为是链接政策变更）。",
        "reversed_note": "平台后来撤销了这项变更。", "back": "返回变更记录", "change_n": "变更 #{id}",
        "published": "发布", "source": "信息源", "title": "标题", "at": "时间", "what": "内容",
    },
    "en": {
        "nav_changes": "Change log", "nav_upcoming": "Upcoming", "nav_sources": "Sources", "nav_api": "API",
        "switch": "中文", "tagline": "link-policy changes of platforms",
        "title_changes": "Link-policy changes", "title_upcoming": "Effective dates ahead",
        "title_sources": "Sources", "platform": "Platform", "action": "Action", "change": "Change", "link_type": "Link type",
        "status": "Status", "targets": "Whose links", "effective": "Effective", "effective_from": "Effective from",
        "effective_to": "to", "text": "Search", "text_hint": "evidence, title, platform…", "any": "Any",
        "filter": "Filter", "clear": "Clear", "status_default": "In the log (not withdrawn)",
        "status_all": "All, withdrawn too", "sources_n": "Sources", "first_seen": "First seen",
        "updated": "Updated", "no_changes": "No change matches.", "older": "Older changes →",
        "newest": "← Newest", "later": "Later dates →", "confidence": "Confidence", "found_by": "Found by", "found_poll": "polling",
        "found_reextract": "re-extraction", "evidence": "Evidence", "in_article": "In the article",
        "full_article": "Show the whole article",
        "not_verbatim": "The sentence does not appear verbatim in the stored article (converted script or rewording).",
        "article_pruned": "The article's text was removed by retention ([retention]); its evidence, title, link and date are kept.",
        "sources_title": "Reporting sources", "history": "History", "no_history": "No updates.",
        "deliveries": "Deliveries and reminders", "no_deliveries": "No messages are owed.", "notifier": "Notifier",
        "kind": "Kind", "attempts": "Attempts", "next_attempt": "Next attempt", "sent_at": "Sent",
        "last_error": "Last error", "corrections": "Report a mistake", "not_a_change": "Not a link-policy change",
        "correct": "Correct it", "right_date": "Right effective date", "no_date": "The text gives no date",
        "right_platform": "Right platform", "right_action": "Right action", "unchanged": "unchanged",
        "token": "Access token",
        "read_only": "Read-only: the server has no [http] token, so corrections are off.",
        "corrections_hint": "A correction applies at once and updates the people told, as policy-monitor label does.",
        "recorded": "Recorded", "week_of": "Week of {date}", "nothing_upcoming": "No effective date ahead.",
        "name": "Name", "source_kind": "Kind", "last_poll": "Last poll", "next_poll": "Next poll",
        "entries": "Entries", "changes": "Changes", "error": "Error", "subscribe": "Subscribe",
        "atom": "Atom feed (these filters)", "calendar": "Calendar of effective dates (iCalendar)",
        "api_title": "JSON API", "not_found": "Not found", "no_change": "There is no change #{id}.",
        "bad_request": "Bad request", "server_error": "Server error", "today": "today", "page_error": "Error",
        "withdrawn_note": "This change was withdrawn: a person, or the extractor on re-extraction, judged it not "
                          "to be a link-policy change.",
        "reversed_note": "The platform later reversed this change.", "back": "Back to the change log",
        "change_n": "Change #{id}", "published": "Published", "source": "Source", "title": "Title",
        "at": "At", "what": "What",
    },
}

STATUS = {
    "zh": {"active": "有效", "reversed": "已撤销", "withdrawn": "已排除"},
    "en": {"active": "active", "reversed": "reversed", "withdrawn": "withdrawn"},
}
EVENTS = {
    "zh": {"date_set": "补充了生效日期", "date_moved": "生效日期变更", "reversed": "平台撤销", "withdrawn": "已排除",
           "date_corrected": "人工更正日期", "platform_corrected": "人工更正平台", "action_corrected": "人工更正动作"},
    "en": {"date_set": "date given", "date_moved": "date moved", "reversed": "reversed", "withdrawn": "withdrawn",
           "date_corrected": "date corrected", "platform_corrected": "platform corrected",
           "action_corrected": "action corrected"},
}
DELIVERY = {
    "zh": {"alert": "通知", "update": "更新", "reminder": "提醒", "ops": "运维", "pending": "待发送", "sent": "已发送",
           "failed": "失败，将重试", "dead": "已放弃", "cancelled": "已取消", "skipped": "已跳过"},
    "en": {"alert": "alert", "update": "update", "reminder": "reminder", "ops": "ops", "pending": "pending",
           "sent": "sent", "failed": "failed, will retry", "dead": "dead", "cancelled": "cancelled",
           "skipped": "skipped"},
}


class Words:
    """A language's words for templates: ``t.key`` and ``t['key']`` (a dict would answer ``t.clear``
    with its own method)."""

    def __init__(self, words: Mapping[str, str]) -> None:
        self._words = dict(words)

    def __getattr__(self, key: str) -> str:
        try:
            return self._words[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> str:
        return self._words[key]

    def __contains__(self, key: object) -> bool:
        return key in self._words


WORDS = {lang: Words(UI[lang]) for lang in LANGS}


def from_accept_language(header: str | None) -> str | None:
    """The first of zh / en by the header's preference (q values honoured), or None."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else None


def negotiate(query: Mapping[str, str], cookies: Mapping[str, str], accept_language: str | None) -> tuple[str, bool]:
    """The visitor's language, and whether it was chosen just now (to be remembered in a cookie)."""
    asked = query.get("lang")
    if asked in LANGS:
        return asked, cookies.get("lang") != asked
    if cookies.get("lang") in LANGS:
        return cookies["lang"], False
    return from_accept_language(accept_language) or DEFAULT, False
