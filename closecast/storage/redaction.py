"""Keep secrets embedded in URLs (``scheme://user:password@host``) out of every message.

The storage layer passes each URL or third-party error text it mentions through
:func:`redact_url` or :func:`redact_text` before it reaches a log, an error or an artifact.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"
"""What replaces the ``user:password`` part of a URL."""

# scheme://userinfo@ anywhere in a text, up to the last '@' before the first '/', blank or
# quote (a password may itself hold an unencoded '@').
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s'\"<>]+@")


def has_userinfo(url: str) -> bool:
    """Return whether ``url`` carries a ``user[:password]@`` part."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return "@" in parts.netloc


def redact_url(url: str) -> str:
    """Return ``url`` with any ``user:password@`` part replaced by ``***@``.

    Text that does not parse as a URL is redacted with :func:`redact_text`.
    """
    if not has_userinfo(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def strip_userinfo(url: str) -> str:
    """Return ``url`` without its ``user:password@`` part (for URLs that are then used)."""
    if not has_userinfo(url):
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact_text(text: str) -> str:
    """Replace the ``user:password@`` part of every URL inside ``text`` by ``***@``."""
    return _USERINFO_IN_TEXT.sub(rf"\1{REDACTED}@", text)
