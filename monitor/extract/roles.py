"""Who is who in a candidate sentence: the platform whose rule changes (the actor), the platforms
whose links are affected (the targets), and where the links are put (the place).

Word order does most of the work: Chinese puts the subject first and the link's owner right before
the link word ("淘宝、京东联盟商品链接"); English names the destination after "links to". Examples
("such as Discord"), setting clauses ("当抖音…时") and content owners ("小红书笔记") are told apart
from subjects, so that the brand named most is not mistaken for the one acting.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from monitor.extract.context import HAN, ArticleContext, PlatformHit

_ENUM_GAP = re.compile(r"^[\s、，,/和与及跟或以及]*$|^\s*(?:,|and|or|&)\s*(?:and\s+)?$", re.I)
# An enumeration that may hold a name the lexicon does not know ("Tribel, Post and Nostr").
ENUM_GAP_LOOSE = re.compile(r"^(?:\s*(?:,|、|，|/|and|or|&|和|与|及|以及)\s*|\s*[A-Z][\w.]{1,20}\s*)+$")
_PLACE_BEFORE_ZH = re.compile(r"(?:在|于|登录|进入|通过)\s*$")
_PLACE_BEFORE_EN = re.compile(r"(?:\bon|\bin|\bacross|\bwithin)\s+(?:(?:his|her|its|their|the)\s+)?$", re.I)
_TARGET_BEFORE_EN = re.compile(r"(?:links?|urls?|linking|redirect(?:s|ed)?|traffic|users?)\s+(?:to|from|for|of)\b"
                               r"[^.;:]{0,60}$", re.I)
# "跳转淘宝天猫的店铺", "链接到抖音": the platform the link leads to.
_TARGET_BEFORE_ZH = re.compile(r"(?:跳转|链接|导流|外链|打开)(?:至|到|向)?\s*$")
# "小红书笔记下挂链接", "快手直播间": the platform owning the content the links are put in.
_PLACE_AFTER_ZH = re.compile(r"(?:的)?(?:笔记|直播间|短视频|店铺|小店|主页|帖子|评论区|个人简介|简介|群聊|朋友圈)")
_SETTING_CLAUSE_ZH = re.compile(r"当[^，,。；]{0,60}时|继[^，,。；]{0,40}(?:之后|以后)|与[^，,。；]{0,30}不同|相比[^，,。；]{0,30}")
_TARGET_GAP_ZH = re.compile(r"^[^，。；在将发宣称布,]{0,12}$")
_LATIN_START = re.compile(r"^\W*[A-Za-z]")
# "other platforms, such as Discord": an example, not the platform acting.
_EXAMPLE_BEFORE = re.compile(r"(?:such as|like|e\.g\.|including|例如|比如|诸如)\s*$", re.I)


def places(sentence: str, plats: Sequence[PlatformHit]) -> set[int]:
    """Mentions marked as the place where links are published ("在快手直播间", "on Twitter")."""
    return {i for i, (_pid, s, e) in enumerate(plats)
            if _PLACE_BEFORE_ZH.search(sentence[max(0, s - 6):s])
            or _PLACE_BEFORE_EN.search(sentence[max(0, s - 12):s])
            or (_PLACE_AFTER_ZH.match(sentence[e:e + 6])
                and not _TARGET_BEFORE_ZH.search(sentence[max(0, s - 6):s]))}


def targets(sentence: str, plats: Sequence[PlatformHit], link_spans: list[tuple[int, int]],
            action_spans: list[tuple[int, int]]) -> set[int]:
    """Indexes of platform mentions whose links are affected: the ones directly before a link word
    (with an enumeration "淘宝、京东联盟商品链接"), or after "links to" in English."""
    targets: set[int] = set()
    for i, (_, s, e) in enumerate(plats):
        for ls, _le in link_spans:
            gap = sentence[e:ls]
            if ls < e or not _TARGET_GAP_ZH.match(gap) or re.search(r"[A-Za-z]{3,}", gap):
                continue
            # The nearest platform before the link word, with no verb between ("QQ可以直接打开淘宝链接"
            # makes 淘宝 the target, not QQ).
            if any(e <= other_s < ls for _p, other_s, _e in plats) or any(
                    e <= a_s < ls for a_s, _a_e in action_spans):
                continue
            targets.add(i)
        if _TARGET_BEFORE_EN.search(sentence[max(0, s - 80):s]) or _TARGET_BEFORE_ZH.search(
                sentence[max(0, s - 6):s]):
            targets.add(i)
    # Extend over an enumeration: "淘宝、京东联盟" makes 淘宝 a target too, "links to A, B and C" makes B, C.
    changed = True
    while changed:
        changed = False
        for i in range(len(plats) - 1):
            gap = sentence[plats[i][2]:plats[i + 1][1]]
            if not _ENUM_GAP.match(gap):
                continue
            for a, b in ((i, i + 1), (i + 1, i)):
                if a in targets and b not in targets:
                    targets.add(b)
                    changed = True
    return targets


def actor(sentence: str, plats: Sequence[PlatformHit], targets: set[int], action_at: int,
          ctx: ArticleContext) -> tuple[str | None, bool]:
    """The platform whose rule changes: one marked as the place ("在快手", "on Twitter"); else the
    platform named nearest before the action word (the subject); else the first named after it;
    else the source's platform, else the platform the article is about."""
    target_ids = {plats[i][0] for i in targets}
    # A platform named elsewhere in the sentence as more than a target speaks for itself
    # ("微信…《微信外部链接内容管理规范》…微信对…进行了限制" is WeChat's own rule).
    examples = {i for i, (_p, st, _e) in enumerate(plats) if _EXAMPLE_BEFORE.search(sentence[max(0, st - 12):st])}
    # An enumeration that starts with an example is all examples ("such as Discord or Mastodon").
    for i in range(1, len(plats)):
        if i - 1 in examples and _ENUM_GAP.match(sentence[plats[i - 1][2]:plats[i][1]]):
            examples.add(i)
    others = [(i, p) for i, p in enumerate(plats) if i not in targets and i not in examples]
    place_idx = places(sentence, plats)
    for i, (pid, _s, _e) in others:
        if i in place_idx and pid not in target_ids:
            return pid, True
    # A platform in a setting clause ("当抖音电商…宣布…时，小红书却…") is not the subject.
    setting = [(m.start(), m.end()) for m in _SETTING_CLAUSE_ZH.finditer(sentence)]
    before = [p for _i, p in others if p[2] <= action_at and not any(a <= p[1] < b for a, b in setting)]
    if before:
        # Chinese puts the subject first ("腾讯、阿里…回应工信部…并解除"); English reports often
        # open with someone else ("Meta CEO … announced that Instagram users can now …").
        subject = before[0] if HAN.search(sentence[: before[0][1] + 1]) and not _LATIN_START.match(sentence) \
            else before[-1]
        return subject[0], True
    # Nothing named before the action: a platform named after it is its object ("不得发布淘宝…的
    # 商品链接"), so the source's own platform, when it has one, is the actor.
    if ctx.article.platform_hint:
        return ctx.article.platform_hint, False
    if others:
        return others[0][1][0], True
    if ctx.main_platform and ctx.main_platform not in target_ids:
        return ctx.main_platform, False
    if len(target_ids) == 1:
        # The only platform named is the one whose links change, and nobody else acts on them:
        # it acts on its own links ("Google 网址缩短器…链接…将不再返回响应").
        return next(iter(target_ids)), True
    return None, False
