"""Redaction: no part of a URL's credentials or of a secret query/fragment value is ever shown, and
URLs without secrets stay readable."""

import pytest

from pipeline.core.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("rtsp://admin@cam/live", "rtsp://***@cam/live"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("cannot open rtsp://u:p@h/s: timeout", "cannot open rtsp://***@h/s: timeout"),
        ("rtsp://a:b@h1/x and rtsp://c:d@h2/y", "rtsp://***@h1/x and rtsp://***@h2/y"),
        # An unencoded '@' in the password: the host is what follows the last '@' (as FFmpeg reads it).
        ("rtsp://admin:p@ss@h/x", "rtsp://***@h/x"),
        ("rtsp://admin:p@s@s@h:554/x", "rtsp://***@h:554/x"),
        # An unencoded '/', '?' or '#' in the password.
        ("rtsp://admin:pa/ss@h/live", "rtsp://***@h/live"),
        ("rtsp://admin:pa?ss@h/live", "rtsp://***@h/live"),
        ("rtsp://admin:pa#ss@h/live", "rtsp://***@h/live"),
        # A scheme mistyped into a path (the config made it absolute): the credentials still go.
        (
            "file not found: /home/me/rtsp/admin:hunter2@10.0.0.5:554/x",
            "file not found: /home/me/rtsp/***@10.0.0.5:554/x",
        ),
        ("admin:hunter2@10.0.0.5/x", "***@10.0.0.5/x"),
    ],
)
def test_url_credentials_are_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected


SECRET_PARAMS = [
    "token",
    "access_token",
    "access-token",
    "auth_token",
    "Token",
    "password",
    "passwd",
    "pwd",
    "pass",
    "key",
    "api_key",
    "api-key",
    "apikey",
    "secret",
    "client_secret",
    "auth",
    "signature",
    "X-Amz-Signature",
    "sig",
    "X-Amz-Credential",
    "credentials",
]


@pytest.mark.parametrize("name", SECRET_PARAMS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("http://cam/video.mjpg?{name}=abc123", "http://cam/video.mjpg?{name}=***"),
        ("http://cam/video.mjpg?ch=2&{name}=abc123&res=hd", "http://cam/video.mjpg?ch=2&{name}=***&res=hd"),
        ("http://cam/video.mjpg#{name}=abc123", "http://cam/video.mjpg#{name}=***"),
        ("http://cam/video.mjpg?ch=2#view=1&{name}=abc123", "http://cam/video.mjpg?ch=2#view=1&{name}=***"),
    ],
    ids=["query", "query-middle", "fragment", "fragment-second"],
)
def test_secret_query_and_fragment_values_are_hidden(name: str, template: str, expected: str) -> None:
    text = template.format(name=name)
    assert redact(text) == expected.format(name=name)
    assert "abc123" not in redact(f"error: cannot open {text}: 401 Unauthorized")


@pytest.mark.parametrize(
    "text",
    [
        "/data/file.mp4",
        "rtsp://cam.local/stream",
        "rtsp://10.0.0.5:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1",
        "http://cam:8080/video.mjpg?ch=2&res=hd&keyframe=5&monkey=1#t=10",
        "https://cdn.example.com/live/index.m3u8",
        "camera cam1: stream up (25 fps); contact ops@example.com",
    ],
)
def test_urls_without_secrets_stay_readable(text: str) -> None:
    assert redact(text) == text
