"""Credential redaction for URLs and free text (applied to every log line and API answer), and
the one parser of a URL's credentials.

Users type passwords with `#`, `?`, `/`, `@` or spaces into camera URLs without
percent-encoding them; a standard URL parser then takes part of the password for the host,
path or fragment. Redaction therefore never relies on the URL being well-formed: everything
between `scheme://` and the last `@` that may end a userinfo is hidden. Where the
credentials of a URL cannot be told apart from the rest, `split_credentials` refuses it
instead of guessing."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SECRET_KEYS = (
    "password|passwd|pwd|pass|user|username|token|access_token|key|apikey|api_key|secret|"
    "auth|signature|sig"
)
# `_` also percent-encoded (`api%5Fkey=`): servers decode it, so must redaction.
_SECRET_QUERY = re.compile(
    r"(?i)(?P<key>[?&;](?:" + _SECRET_KEYS.replace("_", "(?:_|%5f)") + r")=)[^&#\s]*"
)
_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f]")


class AmbiguousCredentials(ValueError):
    """A URL whose user name and password cannot be told apart from its host and path; the
    message never repeats the URL."""


def split_credentials(url: str) -> tuple[str, tuple[str, str | None] | None]:
    """`url` without its userinfo, and the (user, password) it held, percent-decoded (None
    without userinfo; password None without a `:`). AmbiguousCredentials where the
    userinfo cannot be found with certainty: an `@` after the first `/`, `?` or `#`, or
    whitespace in the URL."""
    m = _SCHEME.match(url)
    if m is None:
        return url, None
    rest = url[m.end() :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    has_userinfo = "@" in authority or "@" in tail
    if _WHITESPACE.search(url) and has_userinfo:
        raise AmbiguousCredentials(
            "the URL holds spaces or control characters: percent-encode them (%20)"
        )
    if "@" in tail:
        raise AmbiguousCredentials(
            "the URL's credentials cannot be parsed: percent-encode '@', '/', '?', '#' and "
            "':' in user names and passwords (%40, %2F, %3F, %23, %3A)"
        )
    if "@" not in authority:
        return url, None
    userinfo, _, host = authority.rpartition("@")
    if not host:
        raise AmbiguousCredentials("the URL has credentials but no host")
    user, colon, password = userinfo.partition(":")
    bare = url[: m.end()] + host + tail
    return bare, (unquote(user), unquote(password) if colon else None)


def has_credentials(url: str) -> bool:
    """Whether `url` holds a userinfo (or something that may be one)."""
    m = _SCHEME.match(url)
    return m is not None and "@" in url[m.end() :]


def redact_url(url: str) -> str:
    """`url` with its userinfo (up to the last `@`, however malformed) and secret query
    values replaced by `***`."""
    m = _SCHEME.match(url)
    if m is not None:
        at = url.rfind("@", m.end())
        if at >= 0:
            url = url[: m.end()] + "***" + url[at:]
    return _SECRET_QUERY.sub(r"\g<key>***", url)


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`.

    A URL's userinfo runs from `scheme://` to the last `@` of the word (up to whitespace);
    a password with spaces (`rtsp://user:my pass@host/`) is caught too: a word that looks
    like `user:password` (a `:`, no `/` or `?`) without an `@` extends to the next word on
    the line that has one. Redacting too much is the safe error."""
    out: list[str] = []
    pos = 0
    for m in _SCHEME.finditer(text):
        if m.start() < pos:
            continue  # inside a span already redacted
        start = m.end()
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        ws = _WHITESPACE.search(text, start, line_end)
        word_end = ws.start() if ws else line_end
        at = text.rfind("@", start, word_end)
        if at < 0:
            word = text[start:word_end]
            if ":" in word and "/" not in word and "?" not in word:
                nxt = text.find("@", word_end, line_end)
                if nxt >= 0:
                    later = _WHITESPACE.search(text, nxt, line_end)
                    at = text.rfind("@", nxt, later.start() if later else line_end)
        if at >= 0:
            out.append(text[pos:start] + "***")
            pos = at
    out.append(text[pos:])
    return _SECRET_QUERY.sub(r"\g<key>***", "".join(out))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message so that no handler ever sees a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
