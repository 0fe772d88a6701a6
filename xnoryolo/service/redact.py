"""Credential redaction for URLs and free text: applied to every log line and API answer."""

from __future__ import annotations

import logging
import re

# scheme://userinfo@ -> scheme://***@ (user names of cameras are often secrets too).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s]+@")
_SECRET_QUERY = re.compile(
    r"(?i)(?P<key>[?&;](?:password|passwd|pwd|pass|user|username|token|access_token|key|"
    r"apikey|api_key|secret|auth|signature|sig)=)[^&#\s]*"
)


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message so that no handler ever sees a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
