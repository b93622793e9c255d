#!/usr/bin/env python3
"""Makes the README's screenshots of the web pages from a small demo change log.

    .venv/bin/python docs/screenshots.py [--out docs]

Serves two RSS feeds of demo articles (written for this demo, after real announcements) on
127.0.0.1, runs `policy-monitor once` on them with the clock at 2023-08-20, records one correction
as a person would (`policy-monitor label`), starts `policy-monitor serve`, and has Debian's chromium
(through playwright) take screenshots of the change log, one change, the upcoming dates and the
sources, in English and Chinese. Needs /usr/bin/chromium (`apt-get install chromium`) and a CJK
font for the Chinese text (`apt-get install fonts-noto-cjk`).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import format_datetime
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

NOW = "2023-08-20T10:00:00+08:00"
TECH = [
    ("YouTube will make links in Shorts descriptions unclickable", "2023-08-09T15:00:00+00:00",
     "<p>YouTube announced that starting August 31, links in Shorts comments and descriptions will no longer be "
     "clickable.</p><p>The company said the change is meant to fight spam and scams. Creators can still add a "
     "clickable link to their channel banner.</p>"),
    ("Meta begins blocking news links in Canada", "2023-08-01T18:00:00+00:00",
     "<p>Meta said on Tuesday it has begun ending news availability on Facebook and Instagram in Canada, and the "
     "change will take effect for all users over the coming weeks.</p><p>Links to news articles will no longer be "
     "viewable in Canada.</p>"),
    ("Twitter bans links to Mastodon, Instagram and other rivals", "2022-12-18T20:00:00+00:00",
     "<p>Twitter said on Sunday it will no longer allow users to post links to other social media platforms, "
     "including Facebook, Instagram and Mastodon, effective immediately.</p>"),
    ("微博：9月15日起限制外链跳转", "2023-08-19T02:00:00+00:00",
     "<p>微博发布公告，9月15日起将限制博文中的外部链接跳转，用户点击后需经过安全提示页。</p>"),
]
ECOM = [
    ("快手电商发布直播间商品链接新规", "2023-08-15T02:00:00+00:00",
     "<p>快手电商今日发布公告。</p><p>9月1日起，快手直播间将禁止发布淘宝、京东等第三方平台商品链接，已挂载的链接将被下架。"
     "</p><p>平台表示，此举是为了保障消费者的售后体验。</p>"),
    ("抖音电商：直播间将不再支持拼多多商品链接", "2023-08-18T03:00:00+00:00",
     "<p>抖音电商发布公告称，8月25日起，拼多多商品链接将无法在抖音直播间购物车中发布。</p><p>已发布的相关链接将在规定时间后被下架。"
     "</p><p>业内人士认为，此举将进一步推动商家在平台内闭环经营。</p>"),
    ("小红书整治笔记导流", "2023-08-10T02:00:00+00:00",
     "<p>小红书宣布，即日起禁止在笔记中发布微信二维码和外部链接，违规笔记将被限流。</p>"),
]
SECOND_DOUYIN = ("抖音直播间下架拼多多链接", "2023-08-19T01:00:00+00:00",
                 "<p>据报道，抖音电商宣布8月25日起禁止在抖音直播间发布拼多多商品链接。</p>")


def rss(items: list[tuple[str, str, str]], site: str) -> bytes:
    out = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{site}</title>'
           f"<link>https://{site}/</link><description>demo</description>"]
    for n, (title, published, body) in enumerate(items):
        link = f"https://{site}/{published[:10]}/{n}.html"
        out.append(f"<item><title>{escape(title)}</title><link>{link}</link><guid>{link}</guid>"
                   f"<pubDate>{format_datetime(datetime.fromisoformat(published))}</pubDate>"
                   f"<description><![CDATA[{body}]]></description></item>")
    out.append("</channel></rss>")
    return "".join(out).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = ap.parse_args()
    out = Path(args.out)
    feeds = {"/tech.xml": rss(TECH, "tech.example.org"), "/ecom.xml": rss(ECOM + [SECOND_DOUYIN], "ecom.example.cn")}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_a: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = feeds.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    feed_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=feed_server.serve_forever, daemon=True).start()
    feed_port = feed_server.server_address[1]
    with tempfile.TemporaryDirectory(prefix="pm-demo-") as tmp:
        cfg = Path(tmp) / "monitor.toml"
        cfg.write_text(f'[storage]\nurl = "sqlite:///{tmp}/monitor.db"\n[http]\ntoken = "demo-token-0123456789"\n'
                       f'[[sources]]\nname = "tech-news"\nurl = "http://127.0.0.1:{feed_port}/tech.xml"\n'
                       f'[[sources]]\nname = "ecom-news"\nurl = "http://127.0.0.1:{feed_port}/ecom.xml"\n'
                       f'[[sources]]\nname = "rules-centre"\nurl = "http://127.0.0.1:{feed_port}/gone.xml"\n',
                       encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")} | {"MONITOR_NOW": NOW}
        cli = [sys.executable, "-m", "monitor"]
        subprocess.run(cli + ["once", "--config", str(cfg)], env=env, capture_output=True)
        port = free_port()
        server = subprocess.Popen(cli + ["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"],
                                  env=env | {"MONITOR_NOW": "2023-08-20T11:00:00+08:00"})
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    if httpx.get(base + "/api/sources").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            changes = httpx.get(base + "/api/changes").json()["changes"]
            weibo = next(c["id"] for c in changes if c["platform"] == "weibo")
            douyin = next(c["id"] for c in changes if c["platform"] == "douyin")
            # a person corrects one date through the API, as the page's form would
            httpx.post(f"{base}/api/changes/{weibo}/labels", json={"effective_date": "2023-09-18"},
                       headers={"Authorization": "Bearer demo-token-0123456789"})
            shoot(base, out, douyin)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            feed_server.shutdown()


def shoot(base: str, out: Path, change_id: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            for locale, suffix in (("en-US", ""), ("zh-CN", "-zh")):
                page = browser.new_context(locale=locale, viewport={"width": 1200, "height": 800},
                                           device_scale_factor=1).new_page()
                page.goto(base + "/")
                page.screenshot(path=str(out / f"screenshot-changes{suffix}.png"), full_page=True)
                if suffix:
                    continue
                page.goto(f"{base}/changes/{change_id}")
                page.screenshot(path=str(out / "screenshot-change.png"), full_page=True)
                page.goto(base + "/upcoming")
                page.screenshot(path=str(out / "screenshot-upcoming.png"), full_page=True)
                page.goto(base + "/sources")
                page.screenshot(path=str(out / "screenshot-sources.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
