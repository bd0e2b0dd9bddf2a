"""Credentials in a server URL (http://user:password@host): secrets, kept out of everything shown.

They travel only in the requests (httpx sends them as Basic auth); what is shown, saved in a
plan and compared with a saved plan's server is the URL without them.
"""

from __future__ import annotations

from urllib.parse import unquote


def _userinfo(url: str) -> tuple[str, str, str]:
    """`url` split around its credentials: (before, credentials, after); credentials are what
    stands between `//` (or the start) and the last `@` of the authority."""
    start = url.find("//")
    start = start + 2 if start >= 0 else 0
    end = len(url)
    for stop in "/?#":
        at = url.find(stop, start)
        if at >= 0:
            end = min(end, at)
    at = url.rfind("@", start, end)
    if at < 0:
        return url, "", ""
    return url[:start], url[start:at], url[at + 1 :]


def public_url(url: str) -> str:
    """`url` without the credentials it may carry (`http://user:pw@host` -> `http://host`)."""
    before, credentials, after = _userinfo(url)
    return before + after if credentials else url


def url_secrets(url: str) -> list[str]:
    """The secrets `url` carries, as written and decoded, to be masked in any output: its
    credentials, and their password (a user name alone is no secret, and masking a common
    word everywhere would garble the output)."""
    _, credentials, _ = _userinfo(url)
    if not credentials:
        return []
    _, _, password = credentials.partition(":")
    parts = {credentials, password, unquote(password)}
    return sorted(p for p in parts if p)
