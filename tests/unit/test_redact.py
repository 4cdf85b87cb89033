import pytest

from pipeline.core.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("rtsp://admin@cam/live", "rtsp://***@cam/live"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("http://cam/video.mjpg?token=abc123&ch=2", "http://cam/video.mjpg?token=***&ch=2"),
        ("http://cam/snap?user=x&password=pw", "http://cam/snap?user=x&password=***"),
        ("cannot open rtsp://u:p@h/s: timeout", "cannot open rtsp://***@h/s: timeout"),
        ("/data/file.mp4", "/data/file.mp4"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
