"""Safe by default: security headers on every response, and the checks every write passes.

The pages run no script at all, so the Content-Security-Policy allows none: even a title that got
past escaping could not run. Writes (people's corrections) exist only when a token is configured,
and each must prove three things:

- it comes from this site: the ``Origin`` (else ``Referer``) names this host, so another site's
  form cannot post here;
- it comes from this page: the form's ``csrf`` field equals the ``pm_csrf`` cookie (SameSite=Strict,
  HttpOnly), which another site can neither read nor send;
- its sender knows the token: typed in the form once (then remembered in an HttpOnly, SameSite=Strict
  session cookie holding an HMAC of it, never the token itself), or sent as ``Authorization:
  Bearer`` by a script calling the JSON API (a header no cross-site form can set).

A write is never accepted by GET."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
CSRF_COOKIE = "pm_csrf"
AUTH_COOKIE = "pm_auth"

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[dict[str, Any]], Awaitable[None]]],
                   Awaitable[None]]


class SecurityHeaders:
    """Plain ASGI middleware (cheaper than a per-request task) adding HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in HEADERS if h[0] not in present]
            await send(message)

        await self.app(scope, receive, with_headers)


class Forbidden(Exception):
    """A write refused; ``status`` is 401 (no or wrong credentials) or 403 (not allowed at all)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Guard:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._session = (hmac.new(token.encode(), b"policy-monitor web session", hashlib.sha256).hexdigest()
                         if token else None)

    @property
    def writable(self) -> bool:
        return self.token is not None

    def session_value(self) -> str:
        assert self._session is not None
        return self._session

    def signed_in(self, cookies: Mapping[str, str]) -> bool:
        value = cookies.get(AUTH_COOKIE)
        return bool(self._session and value and hmac.compare_digest(value, self._session))

    def _read_only(self) -> None:
        if self.token is None:
            raise Forbidden(403, "this server is read-only: set [http] token (or $MONITOR_HTTP_TOKEN) to allow corrections")

    def check_bearer(self, authorization: str | None) -> None:
        """A JSON API write: ``Authorization: Bearer TOKEN``."""
        self._read_only()
        assert self.token is not None
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Forbidden(401, "send the token as 'Authorization: Bearer TOKEN'")
        if not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            raise Forbidden(401, "the token is wrong")

    def check_form(self, headers: Mapping[str, str], cookies: Mapping[str, str], form: Mapping[str, str]) -> bool:
        """A form post from a page: same origin, the CSRF pair, and the token (typed now, or the session
        cookie). Returns True when the token was typed in the form (the caller then sets the cookie)."""
        self._read_only()
        assert self.token is not None
        host = (headers.get("host") or "").lower()
        origin = headers.get("origin")
        referer = headers.get("referer")
        source = origin if origin and origin != "null" else referer
        if not source or (urlsplit(source).netloc.lower() != host):
            raise Forbidden(403, "this form must be sent from this site's own page (Origin/Referer check)")
        cookie, field = cookies.get(CSRF_COOKIE) or "", form.get("csrf") or ""
        if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
            raise Forbidden(403, "the form has expired or was not sent from this site: reload the page and try again")
        typed = (form.get("token") or "").strip()
        if typed:
            if not hmac.compare_digest(typed.encode(), self.token.encode()):
                raise Forbidden(401, "the access token is wrong")
            return True
        if self.signed_in(cookies):
            return False
        raise Forbidden(401, "type the access token ([http] token) to correct a change")


def new_csrf() -> str:
    return secrets.token_urlsafe(32)
