"""Nothing lost: real redis-server processes killed, restarted (with and without their data), with
passwords, ACL users and TLS; the durable publisher and the consumer-group client against them."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import generate_latest

from pipeline.core.messages import Event
from pipeline.core.metrics import VIGIL_REGISTRY
from pipeline.events.client import EventClient
from pipeline.events.publisher import EVENTS_STREAM, EventPublisher, camera_stream, check_connection
from pipeline.events.spool import Spool
from pipeline.runtime.redis_server import EmbeddedRedis, find_redis_server, free_port
from tests.support.configs import chatty_yaml, sample_event, vigil_run
from tests.support.crash import crash_after_confirm, stream_ids
from tests.support.metrics import total, value
from tests.support.wait import wait_for

PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


def make_event(camera: str, seq: int, label: str = "person", captured_at: float | None = None) -> Event:
    return sample_event(camera, seq, label, captured_at)


class Producer:
    """Publishes events for two cameras at a steady rate from a thread, like camera actors do."""

    def __init__(self, url: str, spool_dir: Path, rate_hz: float = 20.0) -> None:
        self.publishers = {
            cam: EventPublisher(url, cam, spool_dir / f"{cam}.sqlite", retry_cap_s=0.5) for cam in ("a", "b")
        }
        self.produced: dict[str, list[str]] = {"a": [], "b": []}
        self._period = 1.0 / rate_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seq = 0
        while not self._stop.wait(self._period):
            for cam, pub in self.publishers.items():
                ev = make_event(cam, seq)
                pub.publish([ev])
                self.produced[cam].append(ev.event_id)
            seq += 1

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def spooled(self) -> int:
        return sum(p.spooled for p in self.publishers.values())

    def close(self) -> None:
        for pub in self.publishers.values():
            pub.close()


def publish_one(url: str, spool: Path) -> Event:
    """Publish one event through a fresh publisher and wait until Redis has it."""
    pub = EventPublisher(url, "cam", spool)
    ev = make_event("cam", 1)
    pub.publish([ev])
    assert pub.flush(10)
    pub.close()
    return ev


def assert_exactly_once_in_order(client: redis.Redis, produced: dict[str, list[str]]) -> None:
    everything = stream_ids(client, EVENTS_STREAM)
    assert len(everything) == len(set(everything)), "an event_id was written twice"
    for cam, ids in produced.items():
        assert stream_ids(client, camera_stream(cam)) == ids, f"camera {cam}: missing, repeated or out of order"
    assert sorted(everything) == sorted(produced["a"] + produced["b"])


def test_redis_outage_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """Redis killed under a steady producer: the producer never blocks, events pile up in the spool, and
    once Redis is back every event is in each stream exactly once, in order."""
    server = EmbeddedRedis(extra_args=PERSISTENT)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        with Producer(server.url, tmp_path) as producer:
            wait_for(lambda: client.exists(EVENTS_STREAM) and client.xlen(EVENTS_STREAM) >= 20, 30, "events delivered")
            client.close()
            server.kill()
            outage_start = len(producer.produced["a"])
            # The outage lasts until the producer went on producing and both spools hold what it produced.
            wait_for(
                lambda: (
                    len(producer.produced["a"]) - outage_start >= 60
                    and all(p.spooled >= 50 for p in producer.publishers.values())
                ),
                60,
                "events produced and spooled while Redis is down",
            )
            server.start()
            outage_end = len(producer.produced["a"])
            wait_for(lambda: len(producer.produced["a"]) >= outage_end + 40, 60, "events after the outage")
        for pub in producer.publishers.values():
            assert pub.flush(30), "the spool must drain once Redis is back"
        assert producer.spooled() == 0
        client = redis.Redis.from_url(server.url)
        assert_exactly_once_in_order(client, producer.produced)
        client.close()
        producer.close()
    finally:
        server.stop()


def test_same_event_handed_over_twice_is_written_once(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """An event handed over again (same event_id), by the same publisher or by a second one with its own
    spool, is in vigil:events, in the camera's stream and on its Pub/Sub channel exactly once."""
    cam = "twice"
    events = [make_event(cam, i) for i in range(3)]
    ids = [e.event_id for e in events]
    client = redis.Redis.from_url(redis_server.url)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(camera_stream(cam))
    first = EventPublisher(redis_server.url, cam, tmp_path / "first.sqlite")
    first.publish(events)
    first.publish(events[1:2])
    assert first.flush(10)
    second = EventPublisher(redis_server.url, cam, tmp_path / "second.sqlite")
    second.publish(events)
    assert second.flush(10)
    first.close()
    second.close()
    assert stream_ids(client, camera_stream(cam)) == ids
    assert [i for i in stream_ids(client, EVENTS_STREAM) if i in ids] == ids
    client.publish(camera_stream(cam), "end")  # Redis delivers it after every message published before it
    heard: list[str] = []
    wait_for(lambda: _heard_until(listener, "end", heard), 10, "the Pub/Sub messages")
    assert [Event.model_validate_json(m).event_id for m in heard] == ids
    listener.close()
    client.close()


def _heard_until(listener: redis.client.PubSub, last: str, heard: list[str]) -> bool:
    """Collect messages into ``heard``; True once ``last`` arrived (it is not collected)."""
    while (message := listener.get_message(timeout=0.1)) is not None:
        data = message["data"].decode()
        if data == last:
            return True
        heard.append(data)
    return False


# Publishes through EventPublisher in a process that dies (exit 9) at the moment the outbox would
# forget a batch Redis has confirmed: the window a retry must not turn into a duplicate.
REPO = Path(__file__).resolve().parents[2]


def test_crash_after_redis_confirmed_but_before_the_outbox_forgot(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """A process killed between Redis confirming a batch and the outbox forgetting it: the next publisher
    on that outbox sends the batch again, and each event is still in Redis exactly once, in order."""
    cam, path = "crashing", tmp_path / "crashing.sqlite"
    ids = crash_after_confirm(redis_server.url, path, cam)
    client = redis.Redis.from_url(redis_server.url)
    confirmed = stream_ids(client, camera_stream(cam))
    assert confirmed and confirmed == ids[: len(confirmed)], "Redis must have confirmed the first batch"
    assert [r.item_id for r in Spool.read(path)] == ids, "the outbox must still hold every event"
    restarted = EventPublisher(redis_server.url, cam, path)
    assert restarted.flush(10)
    restarted.close()
    assert Spool.read(path) == []
    assert stream_ids(client, camera_stream(cam)) == ids
    assert [i for i in stream_ids(client, EVENTS_STREAM) if i in ids] == ids
    client.close()


def _registry_text() -> str:
    return generate_latest(VIGIL_REGISTRY).decode()


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        pytest.param("drop_oldest", slice(5, 15), id="drop_oldest"),
        pytest.param("drop_newest", slice(0, 10), id="drop_newest"),
    ],
)
def test_full_spool_while_redis_is_down_follows_its_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, policy: str, kept: slice
) -> None:
    """Redis down, spool_max 10, 15 events: each discard counts once in
    vigil_publish_errors_total{reason="spool_full"} and logs one error naming the camera and the policy;
    vigil_events_spooled shows what waits and drops to 0 once Redis took it; Redis gets what the policy kept."""
    port = free_port()
    cam = f"full-{policy}"
    pub = EventPublisher(
        f"redis://127.0.0.1:{port}/0", cam, tmp_path / "cam.sqlite", spool_max=10, when_full=policy, retry_cap_s=0.2
    )
    events = [make_event(cam, i) for i in range(15)]
    pub.publish(events[:10])
    assert pub.spooled == 10
    assert value(_registry_text(), "vigil_events_spooled", camera=cam) == 10
    before = total(_registry_text(), "vigil_publish_errors_total", reason="spool_full")
    for n, ev in enumerate(events[10:], 1):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="pipeline.events.publisher"):
            pub.publish([ev])
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and cam in errors[0] and policy in errors[0], errors
        assert total(_registry_text(), "vigil_publish_errors_total", reason="spool_full") == before + n
    assert pub.spooled == 10
    assert value(_registry_text(), "vigil_events_spooled", camera=cam) == 10
    with EmbeddedRedis(port=port) as server:
        assert pub.flush(30)
        assert value(_registry_text(), "vigil_events_spooled", camera=cam) == 0
        client = redis.Redis.from_url(server.url)
        assert stream_ids(client, camera_stream(cam)) == [e.event_id for e in events[kept]]
        client.close()
        pub.close()


def test_redis_restarted_empty_still_gets_what_was_spooled(tmp_path: Path) -> None:
    server = EmbeddedRedis()  # no persistence: a restart loses every key
    server.start()
    try:
        pub = EventPublisher(server.url, "cam", tmp_path / "cam.sqlite", retry_cap_s=0.3)
        pub.publish([make_event("cam", i) for i in range(5)])
        assert pub.flush(10)
        server.kill()
        during = [make_event("cam", i) for i in range(5, 25)]
        pub.publish(during)
        assert pub.spooled == 20
        server.start()  # same port, empty
        assert pub.flush(30)
        client = redis.Redis.from_url(server.url)
        assert stream_ids(client, camera_stream("cam")) == [e.event_id for e in during]
        client.close()
        pub.close()
    finally:
        server.stop()


def test_spool_survives_a_publisher_that_never_reached_redis(tmp_path: Path) -> None:
    """A process that dies with events spooled (here: closed while Redis is down) delivers them on restart."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    first = EventPublisher(url, "cam", tmp_path / "cam.sqlite", retry_cap_s=0.2)
    events = [make_event("cam", i) for i in range(10)]
    first.publish(events)
    first.close(flush_timeout_s=0.5)
    with EmbeddedRedis(port=port) as server:
        second = EventPublisher(server.url, "cam", tmp_path / "cam.sqlite")
        assert second.flush(10)
        client = redis.Redis.from_url(server.url)
        assert stream_ids(client, camera_stream("cam")) == [e.event_id for e in events]
        client.close()
        second.close()


def test_password_and_acl_user(tmp_path: Path) -> None:
    with EmbeddedRedis(password="s3cret") as server:
        admin = redis.Redis.from_url(server.url)
        # A user that may touch only Vigil's keys and channels.
        admin.acl_setuser(
            "vigil", enabled=True, passwords=["+vigilpw"], keys=["vigil:*"], channels=["vigil:*"], commands=["+@all"]
        )
        acl_url = f"redis://vigil:vigilpw@127.0.0.1:{server.port}/0"
        check_connection(acl_url)
        ev = publish_one(acl_url, tmp_path / "cam.sqlite")
        assert stream_ids(admin, camera_stream("cam")) == [ev.event_id]
        with pytest.raises(ConnectionError, match=r"refused the credentials") as info:
            check_connection(f"redis://vigil:wrong@127.0.0.1:{server.port}/0")
        assert "wrong" not in str(info.value)
        admin.close()


@pytest.fixture()
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    from tests.support.tls import make_self_signed

    ca, cert, key = make_self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "tlspw",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"rediss://:tlspw@127.0.0.1:{port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    wait_for(lambda: _pings(url) or proc.poll() is not None, 10, "redis-server with TLS")
    if proc.poll() is not None:
        pytest.fail(f"redis-server could not start with TLS: {proc.stderr.read().decode() if proc.stderr else ''}")
    yield url, ca
    proc.kill()
    proc.wait()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def test_tls_url(tmp_path: Path, tls_redis: tuple[str, Path]) -> None:
    url, _ca = tls_redis
    check_connection(url)
    ev = publish_one(url, tmp_path / "cam.sqlite")
    client = EventClient(url)
    assert [e.event_id for e in client.replay(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))] == [ev.event_id]
    client.close()


@pytest.fixture()
def filled_redis(tmp_path: Path) -> Iterator[tuple[str, list[Event]]]:
    with EmbeddedRedis() as server:
        pub = EventPublisher(server.url, "cam", tmp_path / "cam.sqlite")
        base = time.time() - 60
        events = [make_event("cam", i, "fall" if i % 3 == 0 else "person", captured_at=base + i) for i in range(12)]
        pub.publish(events)
        assert pub.flush(10)
        pub.close()
        yield server.url, events


def test_consumer_group_resumes_without_gaps_or_repeats(filled_redis: tuple[str, list[Event]]) -> None:
    url, events = filled_redis
    seen: list[str] = []
    first = EventClient(url)
    stream = first.consume("alerts", "worker-1", camera="cam", block_ms=200)
    for _ in range(5):
        delivery = next(stream)
        seen.append(delivery.event.event_id)
        delivery.ack()
    unacked = next(stream)  # read, then the worker "crashes" before acknowledging it
    first.close()

    second = EventClient(url)  # the same consumer after a restart
    resumed = second.consume("alerts", "worker-1", camera="cam", block_ms=200)
    redelivered = next(resumed)
    assert redelivered.event.event_id == unacked.event.event_id
    redelivered.ack()
    seen.append(redelivered.event.event_id)
    for _ in range(len(events) - len(seen)):
        delivery = next(resumed)
        seen.append(delivery.event.event_id)
        delivery.ack()
    assert seen == [e.event_id for e in events]
    other = EventClient(url)  # a second group gets everything again, independently
    assert [next(iter_d).event.event_id for iter_d in [other.consume("audit", "a", camera="cam")]] == [
        events[0].event_id
    ]
    pending = redis.Redis.from_url(url).xpending(camera_stream("cam"), "alerts")
    assert pending["pending"] == 0
    second.close()
    other.close()


def test_replay_filters_by_time_camera_and_label(filled_redis: tuple[str, list[Event]]) -> None:
    url, events = filled_redis
    client = EventClient(url)
    since = dt.datetime.fromtimestamp(events[4].captured_at - 0.5, dt.UTC)  # between events 3 and 4
    replayed = list(client.replay(since, camera="cam"))
    assert [e.event_id for e in replayed] == [e.event_id for e in events[4:]]
    falls = list(client.replay(since - dt.timedelta(hours=1), label="fall"))
    assert [e.frame_id for e in falls] == [0, 3, 6, 9]
    client.close()


def _spooled_ids(path: Path) -> list[str]:
    """Ids of the events waiting in a camera's outbox file (status records left out)."""
    return [r.item_id for r in Spool.read(path) if r.kind != "status"]


@pytest.mark.timeout(480)
def test_vigil_sigkilled_while_redis_down_delivers_spool_on_restart(tmp_path: Path, street_mp4: Path) -> None:
    import signal

    import psutil

    spool = tmp_path / "spool"
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(chatty_yaml(street_mp4, spool))
    server = EmbeddedRedis(extra_args=PERSISTENT)
    server.start()
    vigil = vigil_run(cfg, server.url)
    proc = subprocess.Popen([*vigil], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(server.url)
    try:
        wait_for(lambda: client.exists(EVENTS_STREAM) and client.xlen(EVENTS_STREAM) >= 2, 120, "first events")
        # The processes that write to the spool: the camera actor (and the driver itself).
        writers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "CameraHost" in c.name()]
        assert writers, "expected a camera actor process under the vigil run"
        server.kill()
        wait_for(lambda: len(_spooled_ids(spool / "cam.sqlite")) >= 3, 60, "events spooled while Redis is down")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Ray's workers share the driver's fate; wait until the camera actor is gone.
        wait_for(
            lambda: not any(w.is_running() and w.status() != "zombie" for w in writers),
            60,
            "the killed run's camera actor to exit",
        )
        spooled = _spooled_ids(spool / "cam.sqlite")
        assert len(spooled) >= 3
        server.start()
        client = redis.Redis.from_url(server.url)
        before = set(stream_ids(client, EVENTS_STREAM))
        assert not before & set(spooled), "spooled events must not have reached Redis before the restart"
        rerun = subprocess.run([*vigil, "--duration", "5"], capture_output=True, text=True, timeout=180)
        assert rerun.returncode == 0, rerun.stderr
        after = stream_ids(client, EVENTS_STREAM)
        assert len(after) == len(set(after)), "an event was delivered twice"
        assert set(spooled) <= set(after)
        per_camera = stream_ids(client, camera_stream("cam"))
        positions = [per_camera.index(i) for i in spooled]
        assert positions == sorted(positions), "spooled events must arrive in their original order"
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
        server.stop()
