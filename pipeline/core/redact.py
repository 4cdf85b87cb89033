"""Credential redaction for everything a user or an operator can see.

Every URL that reaches a log line, an exception message, an event, a status record or a metric
label goes through :func:`redact` first.

>>> redact("rtsp://admin:hunter2@10.0.0.5:554/live?token=abc&ch=1")
'rtsp://***@10.0.0.5:554/live?token=***&ch=1'
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:token|access_token|auth|password|passwd|pwd|key|api_key|apikey|secret|signature|sig)=)"
    r"(?P<value>[^&#\s]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Replace ``user:pass@`` in URLs and secret-looking query values with ``***``."""
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    return _SECRET_QUERY.sub(r"\g<key>***", text)
