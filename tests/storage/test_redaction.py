"""The one redaction helper: credentials embedded in URLs never survive into a message."""

from __future__ import annotations

import pytest

from closecast.storage.redaction import has_userinfo, redact_text, redact_url, strip_userinfo


@pytest.mark.parametrize(
    ("url", "shown", "used"),
    [
        ("http://host:9000", "http://host:9000", "http://host:9000"),
        ("http://u:pw@host:9000/p?q=1", "http://***@host:9000/p?q=1", "http://host:9000/p?q=1"),
        ("https://only-user@h", "https://***@h", "https://h"),
        ("http://u:p@ss@host", "http://***@host", "http://host"),
        ("s3://bucket/key@v2", "s3://bucket/key@v2", "s3://bucket/key@v2"),
    ],
)
def test_redact_and_strip_urls(url: str, shown: str, used: str) -> None:
    assert redact_url(url) == shown
    assert strip_userinfo(url) == used
    assert has_userinfo(url) == (shown != url)


def test_redact_text_covers_every_url_in_a_message() -> None:
    text = (
        'Could not connect to the endpoint URL: "http://me:s3cr3t@127.0.0.1:9/b?list-type=2"; '
        "proxy https://p:p@ss-w0rd@proxy:3128 failed, docs at https://x.org/a@b"
    )
    redacted = redact_text(text)
    assert "s3cr3t" not in redacted and "ss-w0rd" not in redacted
    assert '"http://***@127.0.0.1:9/b?list-type=2"' in redacted
    assert "https://***@proxy:3128" in redacted
    assert "https://x.org/a@b" in redacted  # an '@' in a path is not a credential
