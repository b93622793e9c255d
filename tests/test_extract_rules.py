"""The rule layer one by one (``RuleExtractor``: the candidates and features the learned decision
weighs): each date form, each cue class, in both languages, and the merge of statements into one
change. Sentences are written for these tests in the style of real reports. The learned extractor's
own tests are in test_extract_model.py."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from monitor.extract import Article, Extractor
from monitor.extract.detector import RuleExtractor
from monitor.extract.dates import effective_date
from monitor.extract.evaluate import evaluate

PUB = date(2022, 2, 26)  # a Saturday


@pytest.mark.parametrize("sentence, ref, lean, want", [
    ("3月1日起，淘宝联盟商品链接将无法发布", PUB, 1, date(2022, 3, 1)),
    ("自2020年10月9日起，直播间不得挂第三方链接", PUB, 1, date(2020, 10, 9)),
    ("即日起，平台禁止发布外链", PUB, 1, PUB),
    ("下周一起全面关闭外链", PUB, 1, date(2022, 2, 28)),
    ("本月底前完成整改，解除屏蔽网址链接", PUB, 1, date(2022, 2, 28)),
    ("明年1月1日起执行新的链接规范", PUB, 1, date(2023, 1, 1)),
    ("12月20日起开放外链", date(2022, 1, 5), -1, date(2021, 12, 20)),   # a report: the past year
    ("1月5日起开放外链", date(2021, 12, 20), 1, date(2022, 1, 5)),       # an announcement: the next year
    ("昨日，微信发布关于外部链接的公告", PUB, -1, date(2022, 2, 25)),
    ("9 月 17 日起开始执行", date(2021, 9, 13), 1, date(2021, 9, 17)),
    ("The change applies starting August 31.", date(2023, 8, 1), 1, date(2023, 8, 31)),
    ("Links will be removed from next Monday.", PUB, 1, date(2022, 2, 28)),
    ("The ban applies as of today.", PUB, 1, PUB),
    ("The policy is effective immediately.", PUB, 1, PUB),
    ("On Sunday, the company banned links to rival networks.", date(2022, 12, 18), -1, date(2022, 12, 18)),
    ("The company said Tuesday it had stopped the delay.", date(2023, 8, 16), -1, date(2023, 8, 15)),
    ("Enforcement will be delayed until August 17, 2021.", date(2021, 8, 11), 1, date(2021, 8, 17)),
    ("updates effective March 5, 2024:", None, 1, date(2024, 3, 5)),
    ("Starting Jan. 16, developers may link out.", date(2024, 1, 10), 1, date(2024, 1, 16)),
    ("谷歌宣布将于2025年8月25日永久关闭goo.gl，自2024年8月23日起链接显示警告", None, 1, date(2025, 8, 25)),
    ("该规定即日生效，违规外链将被清理", PUB, 1, PUB),
    ("新规次日起执行，直播间不得挂外链", PUB, 1, date(2022, 2, 27)),
    ("专项行动将于2月28日至4月30日开展，清理违规链接", PUB, 1, date(2022, 2, 28)),   # a range starts
    ("From now on, links in comments get no ranking credit.", PUB, 1, PUB),
    # a weekday followed by 宣布 is when it was said: the one just past, though the sentence announces
    ("某平台周五宣布开放私聊中的外部链接", date(2021, 9, 18), 1, date(2021, 9, 17)),
    ("周五起开放私聊中的外部链接", date(2021, 9, 18), 1, date(2021, 9, 24)),       # an upcoming start
])
def test_date_forms(sentence: str, ref: date | None, lean: int, want: date) -> None:
    assert effective_date(sentence, ref, lean) == want


@pytest.mark.parametrize("sentence, ref", [
    ("平台将于近期调整外链规则", PUB),                     # no date given: never a guess
    ("The company will remove the links soon.", PUB),
    ("DoNews 7月8日消息 微博调整外链", date(2020, 7, 8)),    # a dateline says when it was reported
    ("OTTAWA, June 29 (Reuters) - Google will remove links", date(2023, 6, 29)),
    ("SACRAMENTO, July 19 — Google's URL shortener links will expire", date(2024, 7, 19)),
    ("3月1日起开放外链", None),                              # no year and no publication date
    ("8月份起实施外链白名单", date(2020, 7, 10)),            # a month without a day is not a date
    ("X is delaying link clicks to the site. — Jane Doe (@janedoe) August 15, 2023", date(2023, 8, 16)),
    ("Subreddits are banning links to X following the salute on Monday.", date(2025, 1, 22)),
    ("Wikipedia moves to remove Archive.today links.", PUB),                 # a site's name is no day
])
def test_no_date_is_invented(sentence: str, ref: date | None) -> None:
    assert effective_date(sentence, ref) is None


def _one(title: str, body: str, published: str | None = "2022-02-26T08:00:00+08:00", hint: str | None = None):  # type: ignore[no-untyped-def]
    pub = datetime.fromisoformat(published) if published else None
    return RuleExtractor().extract(Article("t", title, body, pub, platform_hint=hint))


@pytest.mark.parametrize("body, platform, action", [
    ("<p>快手电商宣布，3月1日起禁止在直播间发布淘宝商品链接。</p>", "kuaishou", "ban"),
    ("<p>微博宣布即日起限制外链跳转，仅白名单网站可直接打开。</p>", "weibo", "restrict"),
    ("<p>9月17日起，微信用户可以在一对一聊天中直接打开外部链接。</p>", "wechat", "allow"),
    ("<p>视频号宣布，自3月25日起小程序商家挂链接需要使用新的接入流程。</p>", "wechat", "require"),
    ("<p>Twitter announced on Sunday that it will ban links to Mastodon and Instagram.</p>", "twitter", "ban"),
    ("<p>Meta said Instagram will restrict links in Stories starting next Monday.</p>", "instagram", "restrict"),
    ("<p>Apple announced today that reader apps can now link to an external website.</p>", "apple", "allow"),
    ("<p>Starting today, Google requires developers to enroll before adding external links.</p>", "google", "require"),
    ("<p>即日起，快手决定针对短视频发布其他平台信息的行为进行专项治理。</p>", "kuaishou", "restrict"),
    ("<p>近日，微信严厉打击朋友圈里诱导分享的小程序链接。</p>", "wechat", "restrict"),
    ("<p>Starting today, apps on the App Store can also include a link to the developer's website.</p>",
     "apple", "allow"),
])
def test_each_action_in_both_languages(body: str, platform: str, action: str) -> None:
    [change] = _one("", body)
    assert (change.platform, change.action) == (platform, action)


def test_traditional_chinese_is_read_through_simplified_lexicon() -> None:
    [change] = _one("", "<p>推特宣佈即日起禁止用戶張貼 Facebook、Instagram 等平台的連結。</p>",
                    published="2022-12-19T10:00:00+08:00")
    assert change.platform == "twitter" and change.action == "ban"
    assert set(change.targets) == {"facebook", "instagram"}
    assert change.effective_date == date(2022, 12, 19)


@pytest.mark.parametrize("title, body", [
    ("如何在公众号文章里添加外部链接", "<p>公众号文章可以添加外部链接，但必须是已备案的网站。</p>"),
    ("How to use affiliate links on Medium", "<p>You can use affiliate links on Medium as long as you disclose them.</p>"),
    ("", "<p>2020年8月，抖音直播也宣布禁止第三方商品链接。</p>"),            # background: an old change
    ("", "<p>Back in 2018, Twitter banned links to some sites.</p>"),
    ("", "<p>链接不能包含二维码等联系方式。</p>"),                            # a standing rule, no change
    ("", "<p>Apple unveiled a new phone with a faster chip today.</p>"),     # no link at all
    ("", "<p>直播电商断外链可取吗？</p>"),                                    # a question
    ("", "<p>Meta says users will still be able to view links to news articles.</p>"),  # what stays
    ("", "<p>调整后，用户仍可正常分享外部链接。</p>"),
    ("", "<p>Because other links can't be added to posts, the one URL must be chosen well.</p>"),  # passive
    ("", "<p>公众号发布的外链必须是合法的，不能包含违法信息。</p>"),           # 发布的: "posted", not "announced"
    ("", "<p>如商家未在规定时间内整改，平台将下架商品，并不能在原有链接上修改。</p>"),  # a penalty clause
    ("", "<p>更新后还有「不再关注」选项，朋友圈跳转也改版了。</p>"),           # a button's name in quotes
    ("", "<p>微博将对商品链接进行特殊解析，呈现的不再是短链。</p>"),             # 不再是: "is no longer"
    ("", "<p>监管部门表示，保障网址链接能被正常访问是互联网发展的基本要求。</p>"),  # a noun, not an act
    ("", "<p>适用场景：支持通过网页链接唤起小程序。</p>"),                    # 唤起 is not 起
    ("", "<p>通过微信开放平台的接口生成小程序链接。</p>"),                    # a product name, not an act
    ("", "<p>Meta tags allow site owners to decide how link previews will be shown on other platforms, "
         "such as Discord.</p>"),                                           # an embedded question, an example
    ("", "<p>The News tab, which lets users see news links, is popular in Australia.</p>"),  # describing
    ("", "<p>Instagram allows one clickable link in the profile (the platform now exposes up to five in a "
         "separate panel), and that slot is the funnel.</p>"),               # an aside is not the news
])
def test_not_a_change(title: str, body: str) -> None:
    assert _one(title, body) == []


def test_actor_is_the_platform_acting_not_every_brand_named() -> None:
    [change] = _one("", "<p>近日，快手电商发布公告称，3月1日起，淘宝、京东联盟商品链接将无法在快手直播间发布。</p>")
    assert change.platform == "kuaishou" and list(change.targets) == ["taobao", "jd"]
    assert change.link_type == "affiliate"


def test_source_platform_is_the_default_actor() -> None:
    [change] = _one("规则更新", "<p>即日起，商家不得在商品详情页发布第三方平台链接。</p>", hint="douyin")
    assert change.platform == "douyin" and change.effective_date == date(2022, 2, 26)


def test_statements_of_one_article_merge_into_one_change() -> None:
    changes = _one("Twitch bans gambling referral links",
                   "<p>Twitch will prohibit sharing links to gambling sites.</p>"
                   "<p>Enforcement will be delayed until August 17, 2021.</p>",
                   published="2021-08-11T12:00:00+00:00")
    assert [(c.platform, c.effective_date) for c in changes] == [("twitch", date(2021, 8, 17))]


def test_two_platforms_in_one_article_are_two_changes() -> None:
    changes = _one("", "<p>9月17日起，QQ可以直接打开淘宝链接。</p><p>同日，微博宣布限制外链跳转。</p>",
                   published="2021-09-17T10:00:00+08:00")
    assert {c.platform for c in changes} == {"qq", "weibo"}


def test_eval_matches_reference_scorer(shared: Path, tmp_path: Path) -> None:
    """`policy-monitor eval` computes what ../shared/tools/score_extraction.py computes from the
    output of `policy-monitor extract`."""
    import subprocess
    import sys

    corpus = shared / "corpus" / "dev2.jsonl"
    report = evaluate([corpus], Extractor())
    pred = tmp_path / "pred.jsonl"
    subprocess.run([sys.executable, "-m", "monitor", "extract", "--input", str(corpus), "--output", str(pred)],
                   check=True, capture_output=True, cwd=tmp_path)
    out = subprocess.run([sys.executable, str(shared / "tools" / "score_extraction.py"), str(corpus), str(pred)],
                         capture_output=True, text=True)
    reference = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("tp", "fp", "fn", "tn", "precision", "recall", "f1", "platform_acc", "date_acc", "invented_dates"):
        assert report.figures[key] == reference[key], key


def test_date_of_a_list_comes_from_its_introduction() -> None:
    [change] = _one("Program policy – what's changed",
                    "<p>We will make the following updates to the program policies effective March 5, 2024:</p>"
                    "<ul><li>We have clarified the definition of offline promotions.</li>"
                    "<li>We have clarified that Amazon Associates may not post Special Links in email.</li></ul>",
                    published=None)
    assert change.platform == "amazon" and change.effective_date == date(2024, 3, 5)


def test_a_list_ends_where_ordinary_text_resumes() -> None:
    [change] = _one("",
                    "<p>Changes effective March 5, 2024:</p><ul><li>New reporting tools.</li></ul>"
                    "<p>Separately, Amazon Associates can no longer post links in email newsletters.</p>",
                    published=None)
    assert change.effective_date is None


def test_a_platform_acting_on_its_own_links() -> None:
    [change] = _one("", "<p>使用 Google 网址缩短器构建的链接在 2025 年 8 月 25 日之后将不再返回响应。</p>", published=None)
    assert change.platform == "google" and change.effective_date == date(2025, 8, 25) and change.targets == ()


def test_the_day_something_was_said_is_not_when_a_future_rule_applies() -> None:
    [change] = _one("", "<p>Facebook said on Monday it will restore news links for Australian users.</p>",
                    published="2021-02-23T09:00:00+00:00")
    assert change.platform == "facebook" and change.effective_date is None
    [change] = _one("", "<p>Twitter said Sunday it would ban links to other social networks.</p>",
                    published="2022-12-18T20:00:00+00:00")
    assert change.effective_date == date(2022, 12, 18)   # a past report: the day it happened


def test_a_rule_waiting_for_an_undated_event_has_no_date() -> None:
    [change] = _one("", "<p>Google said on Saturday it will remove links to news in Canada when the law "
                        "comes into effect.</p>")
    assert change.action == "ban" and change.effective_date is None


@pytest.mark.parametrize("body, published, want", [
    # the rule in one sentence, the day in another that names the platform acting
    ("<p>推特突然推出新措施，禁止用户在个人资料中贴出其他平台的链接。</p><p>昨日推特宣布禁止免费宣传的新政策。</p>",
     "2022-12-19T02:27:00+08:00", date(2022, 12, 18)),
    ("<p>近日，微信朋友圈里分享的头条链接好友无法查看。</p><p>微信从 2 月 11 日起对这些违规内容的传播进行了限制。</p>",
     "2018-03-02T08:00:00+08:00", date(2018, 2, 11)),
    # a sentence that refers back to the change dates it too
    ("<p>X has stopped showing headlines for links shared on its platform.</p>"
     "<p>This new change was implemented on Wednesday for most users.</p>",
     "2023-10-05T09:00:00+00:00", date(2023, 10, 4)),
])
def test_date_stated_in_another_sentence(body: str, published: str, want: date) -> None:
    [change] = _one("", body, published=published)
    assert change.effective_date == want


@pytest.mark.parametrize("body", [
    # the date belongs to what the restored rule undoes, not to the restoration
    "<p>Facebook will restore news links for Australian users.</p>"
    "<p>Facebook had blocked Australians from accessing news on Thursday.</p>",
    # the day a newspaper reported it
    "<p>Twitter is now applying a delay to links to rival sites.</p>"
    "<p>Twitter users noticed it, the Washington Post reported on Tuesday.</p>",
    # a date in another sentence that neither names the platform nor refers to the change
    "<p>Weibo will restrict external links to a whitelist.</p><p>The company's results are due on Monday.</p>",
])
def test_other_dates_in_the_article_are_not_taken(body: str) -> None:
    [change] = _one("", body, published="2021-02-23T09:00:00+00:00")
    assert change.effective_date is None


def test_a_change_recalled_from_months_ago_is_background() -> None:
    body = "<p>今年7月，工信部启动专项整治行动，重点之一便是屏蔽网址链接。</p>"
    assert _one("", body, published="2021-11-12T14:00:00+08:00") == []
    # the same sentence a few weeks after the event is news
    assert [c.platform for c in _one("", body, published="2021-08-02T14:00:00+08:00")] == ["miit"]


def test_today_counts_from_the_dateline_of_a_repost() -> None:
    body = "<p>网易科技讯 6月6日消息，京东今日宣布暂停返利网站的CPS推广链接合作。</p>"
    [change] = _one("", body, published="2012-06-07T10:55:00+08:00")
    assert (change.platform, change.effective_date) == ("jd", date(2012, 6, 6))


def test_a_rule_right_after_its_announcement_is_the_change() -> None:
    body = ("<p>5月7日，小红书与天猫正式推出了“红猫计划”。</p>"
            "<p>商家可以在小红书的笔记下方直接挂上链接，用户点击后即可跳转到天猫店铺。</p>")
    [change] = _one("", body, published="2025-05-12T09:00:00+08:00")
    assert (change.platform, change.action, change.effective_date) == ("xiaohongshu", "allow", date(2025, 5, 7))
    # a byline ("发布时间：…") is not an announcement, and neither is old news
    for before in ("<p>作者：编辑部 发布时间：2025-05-12</p>", "<p>去年，小红书推出了一个新功能。</p>"):
        assert _one("", before + body.split("</p>", 1)[1], published="2025-05-12T09:00:00+08:00") == []


def test_rules_under_a_changelog_title_are_changes_dated_by_it() -> None:
    title = "Affiliate Program Agreement – What’s Changed (December 1, 2017)"
    body = "<p>You must not encourage customers to bookmark your Special Links.</p>"
    [change] = _one(title, body, published=None, hint="amazon")
    assert (change.platform, change.action, change.effective_date) == ("amazon", "ban", date(2017, 12, 1))
    # the same rule under an ordinary title restates a standing rule
    assert _one("Affiliate marketing for beginners", body, published=None, hint="amazon") == []


def test_abbreviations_do_not_end_a_sentence() -> None:
    from monitor.extract.text import sentences
    assert sentences("Starting Jan. 16, developers may link out. Epic vs. Apple ended.") == [
        "Starting Jan. 16, developers may link out.", "Epic vs. Apple ended."]


def test_an_action_in_progress_is_a_change() -> None:
    [change] = _one("", "<p>X is throttling traffic to websites that its owner dislikes.</p>")
    assert (change.platform, change.action) == ("twitter", "restrict")


def test_a_headline_revising_a_policy_heads_a_changelog() -> None:
    body = "<p>Affiliate links must only be included when the extension provides a direct user benefit.</p>"
    [change] = _one("Google changes Chrome extension policies after a scandal", body, published=None)
    assert (change.platform, change.action) == ("google", "restrict")
    assert _one("Google's Chrome extension policies, explained for beginners", body, published=None) == []


def test_targets_listed_apart_from_the_rule_join_it() -> None:
    body = ("<p>Twitter will no longer allow users to post links to other social media platforms.</p>"
            "<p>The company specifies the prohibited platforms are Facebook, Instagram, Mastodon, Truth Social, "
            "Tribel, Post and Nostr.</p>"
            "<p>Links to TikTok, Telegram, YouTube and Weibo are still allowed.</p>")
    [change] = _one("", body, published="2022-12-18T20:00:00+00:00")
    assert change.platform == "twitter"
    assert set(change.targets) == {"facebook", "instagram", "mastodon", "truth_social", "tribel", "nostr"}


def test_a_platform_owning_the_content_is_the_place_and_the_link_destination_the_target() -> None:
    [change] = _one("", "<p>即日起，小红书笔记下挂商品链接，可直接跳转淘宝的店铺。</p>")
    assert (change.platform, change.targets) == ("xiaohongshu", ("taobao",))


def test_marked_dates_in_real_evidence_sentences(shared: Path) -> None:
    """Every labelled evidence sentence of the corpus whose date is marked as the rule's start
    ("3月1日起", "自2017年4月25日起", "将于8月1日正式…", "starting August 31") resolves to the labelled
    effective date, in both languages. The sentences are read from ../shared at run time."""
    from monitor.extract.dates import best_date
    from monitor.extract.text import to_simplified

    checked = 0
    for line in (shared / "corpus" / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        label, published = row["label"], row.get("published") or ""
        if not (label.get("is_link_policy_change") and label.get("effective_date") and label.get("evidence")
                and len(published) >= 10):
            continue
        sentence = to_simplified(label["evidence"])
        found = best_date(sentence, date.fromisoformat(published[:10]), 1)
        if found is None or not found.marked or found.relative:
            continue
        checked += 1
        assert found.value.isoformat() == label["effective_date"], (row["id"], sentence)
    assert checked >= 5  # the corpus holds such sentences; none found means the date rules broke


@pytest.mark.parametrize("body, published, platform, action, when", [
    # an event in the passive is still news (only modal passives state standing rules)
    ("<p>Links to Mastodon have been banned on Twitter.</p>", "2022-12-18T20:00:00+00:00", "twitter", "ban", None),
    # "after March 1" is when the rule starts, not the cause of it
    ("<p>After March 1, Kuaishou will no longer allow links to Taobao in live streams.</p>",
     "2022-02-20T08:00:00+08:00", "kuaishou", "ban", date(2022, 3, 1)),
    # a month ahead is not a change recalled from months ago
    ("<p>Instagram will remove link stickers for small accounts in July, the company announced.</p>",
     "2022-10-05T08:00:00+00:00", "instagram", "ban", None),
    # a "which" clause can state the change itself
    ("<p>Twitter introduced a new policy, which bans links to rival social networks.</p>",
     "2022-12-18T20:00:00+00:00", "twitter", "ban", None),
])
def test_rules_that_must_not_overreach(body: str, published: str, platform: str, action: str,
                                       when: date | None) -> None:
    [change] = _one("", body, published=published)
    assert (change.platform, change.action, change.effective_date) == (platform, action, when)


@pytest.mark.parametrize("body, platform, action", [
    ("<p>工信部宣布，即日起重点整治平台相互屏蔽网址链接的问题。</p>", "miit", "require"),   # a regulator obliges
    ("<p>近日，抖音链接在微信内无法直接打开，需要复制后到浏览器打开。</p>", "wechat", "restrict"),
    ("<p>即日起，微博将采用外链白名单机制。</p>", "weibo", "restrict"),
    ("<p>9月17日起，通过QQ打开淘宝链接不再需要复制口令。</p>", "qq", "allow"),
    ("<p>即日起，笔记可以挂淘宝链接的功能没有了。</p>", "xiaohongshu", "ban"),        # 可以… inside a modifier
    ("<p>X stops showing headlines for links to news articles starting today.</p>", "twitter", "restrict"),
    ("<p>Subreddits are now removing links to X, often allowing screenshots instead.</p>", "reddit", "ban"),
    ("<p>YouTube announced that links in Shorts descriptions are clickable again starting today.</p>",
     "youtube", "allow"),
    ("<p>LinkedIn is now demoting posts that contain external links in the feed.</p>", "linkedin", "restrict"),
    ("<p>X has started to reduce the reach of posts with external links.</p>", "twitter", "restrict"),
])
def test_actions_read_as_users_would(body: str, platform: str, action: str) -> None:
    [change] = _one("", body, hint="xiaohongshu" if "笔记" in body else None)
    assert (change.platform, change.action) == (platform, action)


def test_an_undated_article_still_knows_old_news_by_its_latest_year() -> None:
    body = ("<p>2025年，小红书与淘宝合作推出红猫计划。</p>"
            "<p>2020年，小红书首次向淘宝开放外链，用户能通过笔记跳转到淘宝商品页。</p>")
    assert _one("", body, published=None) == []


def test_news_outlets_and_report_datelines_are_not_the_change() -> None:
    body = "<p>腾讯科技讯 10月27日，据网友反映，苏宁易购已于近日在robots.txt中屏蔽了一淘网的内容抓取。</p>"
    changes = _one("", body, published="2011-10-27T10:00:00+08:00")
    assert all(c.platform != "wechat" for c in changes)           # 腾讯科技 reports, it does not act
    assert all(c.effective_date is None for c in changes)         # "10月27日，据…" is when it was reported


@pytest.mark.parametrize("edit, message", [
    (lambda t: t + "\n[broken", "not valid TOML"),
    (lambda t: t.replace('regulator = true', 'regulator = "yes"'), "platforms.miit.regulator: expected bool"),
    (lambda t: t.replace('name_zh = "快手"', 'name_zh = "快手"\nslogan = "x"', 1), "platforms.kuaishou.slogan: unknown key"),
    (lambda t: t.replace("[cues.zh.actions]", "[cues.zh.actions]\nforbid = [\"禁\"]", 1),
     "cues.zh.actions.forbid: not an action"),
])
def test_a_users_lexicon_is_validated_with_file_and_key(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from monitor.extract.lexicon import BUILTIN, LexiconError, load

    bad = tmp_path / "mine.toml"
    bad.write_text(edit(BUILTIN.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(LexiconError, match=message):
        load(str(bad))
    # the CLI says the same in one line, exit status 2, before reading any input
    out = subprocess.run([sys.executable, "-m", "monitor", "extract", "--lexicon", str(bad), "--input", "-"],
                         input="", capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and str(bad) in out.stderr and message.split(":")[0] in out.stderr
    assert "Traceback" not in out.stderr


def test_a_deadline_dates_a_requirement_but_a_start_wins_over_it() -> None:
    [change] = _one("", "<p>工信部宣布，要求9月17日前各平台必须按标准解除屏蔽网址链接。</p>",
                    published="2021-09-13T10:00:00+08:00")
    assert (change.platform, change.action, change.effective_date) == ("miit", "require", date(2021, 9, 17))
    body = ("<p>视频号宣布，自3月25日起，小程序商家挂链接需要使用新的接入流程。</p>"
            "<p>已入驻的小程序商家需要在6月30日前完成链接组件的升级。</p>")
    [change] = _one("", body, published="2022-03-18T14:00:00+08:00")
    assert change.effective_date == date(2022, 3, 25)


def test_general_tech_feeds_raise_almost_no_alerts(shared: Path) -> None:
    """The real feeds in ../shared/feeds (TechCrunch, blogs, YouTube, Google Alerts…) are ordinary tech
    news: a keyword trigger on "link"/"links" in the text fires on 29 of their 538 entries, the
    extractor must fire on almost none."""
    import feedparser

    entries = flagged = 0
    for path in sorted((shared / "feeds").glob("*/*.xml")):
        for e in feedparser.parse(path.read_bytes()).entries:
            body = (e.get("content") or [{}])[0].get("value") or e.get("summary", "")
            entries += 1
            flagged += bool(Extractor().extract(Article("f", e.get("title", ""), body, None)))
    assert entries > 300
    assert flagged <= 0.01 * entries, f"{flagged} of {entries} entries read as link-policy changes"


def test_traditional_copies_of_the_corpus_read_the_same(shared: Path) -> None:
    """Many reports are in Traditional script: each Chinese article of the corpus, converted to
    Traditional, yields the same changes (platform, action, date) as the original."""
    from dataclasses import replace

    import opencc

    from monitor.extract.records import read_articles

    s2t, extractor, compared = opencc.OpenCC("s2t"), Extractor(), 0
    with (shared / "corpus" / "dev.jsonl").open(encoding="utf-8") as f:
        for a in read_articles(f):
            if a.lang != "zh":
                continue
            want = [(c.platform, c.action, c.effective_date) for c in extractor.extract(a)]
            trad = replace(a, title=s2t.convert(a.title), body=s2t.convert(a.body or ""))
            assert [(c.platform, c.action, c.effective_date) for c in extractor.extract(trad)] == want, a.id
            compared += 1
    assert compared > 100
