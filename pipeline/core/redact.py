"""Credential redaction for everything a user or an operator can see.

Every URL that reaches a log line, an exception message, an event, a status record or a metric
label goes through :func:`redact` first.

>>> redact("rtsp://admin:hunter2@10.0.0.5:554/live?token=abc&ch=1")
'rtsp://***@10.0.0.5:554/live?token=***&ch=1'

A password may itself hold ``@`` or ``/`` (written unencoded in a camera URL): FFmpeg takes the
host from after the *last* ``@``, so everything from ``://`` to the last ``@`` of the URL is
hidden. A URL without ``@`` keeps its host and path readable. A URL whose scheme was mistyped
into a path keeps its secret too:

>>> redact("/home/me/rtsp/admin:hunter2@10.0.0.5:554/live")
'/home/me/rtsp/***@10.0.0.5:554/live'

>>> redact("rtsp://admin:p@ss/w@10.0.0.5/live")
'rtsp://***@10.0.0.5/live'
"""

from __future__ import annotations

import re

# Greedy up to the last '@' of the URL (a URL ends at whitespace): userinfo may contain '@', '/', '?', '#'.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>\S+)@")
# Parameter names whose value is a secret, in the query or the fragment, alone or as the last part of
# a longer name (access_token, access-token, X-Amz-Signature, client_secret, ...).
_SECRET_KEYS = (
    "token",
    "password",
    "passwd",
    "pwd",
    "pass",
    "key",
    "apikey",
    "secret",
    "auth",
    "signature",
    "sig",
    "credential",
    "credentials",
)
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;#](?:[A-Za-z0-9_.-]*[-_.])?(?:" + "|".join(_SECRET_KEYS) + r")=)(?P<value>[^&#;\s]+)",
    re.IGNORECASE,
)


# `user:pass@` after a slash or at the start, with no scheme in front (a URL mistyped into a path).
_BARE_USERINFO = re.compile(r"(?P<lead>^|[/\s])[^/\s:@]+:(?!/)[^\s@]*@")


def redact(text: str) -> str:
    """Replace the ``user:pass@`` part of URLs (also where the scheme is missing or mistyped) and
    secret-looking query/fragment values with ``***``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    text = _BARE_USERINFO.sub(r"\g<lead>***@", text)
    return _SECRET_PARAM.sub(r"\g<key>***", text)
