from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.config import CameraMode, ConfigError, SourceKind, load_config, parse_config, validate_camera

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vigil.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_documented_defaults() -> None:
    cfg = parse_config({"cameras": [{"id": "a", "url": "rtsp://h/s"}]})
    assert cfg.redis.url is None
    assert (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9100)
    assert cfg.models.temporal.head.kind == "lstm"
    assert cfg.cameras[0].effective_mode is CameraMode.LIVE


@pytest.mark.parametrize(
    ("url", "kind", "mode"),
    [
        ("rtsp://user:pw@10.0.0.1/stream", SourceKind.RTSP, CameraMode.LIVE),
        ("https://example.org/live.m3u8", SourceKind.HTTP, CameraMode.LIVE),
        ("/data/clip.mp4", SourceKind.FILE, CameraMode.FILE),
        ("file:///data/clip.mp4", SourceKind.FILE, CameraMode.FILE),
        ("0", SourceKind.WEBCAM, CameraMode.LIVE),
        ("/dev/video2", SourceKind.WEBCAM, CameraMode.LIVE),
    ],
)
def test_url_kind_and_default_mode(url: str, kind: SourceKind, mode: CameraMode) -> None:
    cam = parse_config({"cameras": [{"id": "a", "url": url}]}).cameras[0]
    assert cam.kind is kind
    assert cam.effective_mode is mode


def test_looped_file_plays_as_live_camera() -> None:
    cam = parse_config({"cameras": [{"id": "a", "url": "/x.mp4", "loop": True}]}).cameras[0]
    assert cam.effective_mode is CameraMode.LIVE


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("cameras: []\n", "cameras (line 1): at least one camera is required"),
        (
            "cameras:\n  - id: a\n    url: rtsp://h/s\n    fps: -1\n",
            "cameras[0].fps (line 4): Input should be greater than 0",
        ),
        ("cameras:\n  - id: a\n    url: rtsp://h/s\n    colour: red\n", "cameras[0].colour (line 4): unknown key"),
        ("cameras:\n  - id: a\n    url: ftp://h/s\n", "cameras[0].url (line 3): unsupported URL scheme 'ftp'"),
        ("cameras:\n  - {id: a, url: /x.mp4}\n  - {id: a, url: /y.mp4}\n", "duplicate camera id 'a'"),
        ("cameras:\n  - {id: 'a b', url: /x.mp4}\n", "cameras[0].id (line 2): use letters, digits"),
        (
            "cameras:\n  - {id: a, url: /x}\nmetrics: {port: http}\n",
            "metrics.port (line 3): Input should be a valid integer",
        ),
        (
            "cameras:\n  - {id: a, url: /x}\nmodels:\n  temporal:\n    head: {kind: gru}\n",
            "models.temporal.head (line 5): Input tag 'gru' found using 'kind' does not match",
        ),
        (
            "cameras:\n  - {id: a, url: /x}\nredis: {url: 'localhost:6379'}\n",
            "redis.url (line 3): must start with redis://",
        ),
        (
            "cameras:\n  - {id: a, url: /x}\nray:\n  placement: fused\n  classifier: {replicas: 2}\n",
            "ray (line 3): classifier: not used with placement: fused (only with workers)",
        ),
        (
            "cameras:\n  - {id: a, url: /x}\nray:\n  vision: hosts\n",
            "ray (line 3): ray.vision no longer exists; use ray.placement",
        ),
        ("cameras: [\n", "invalid YAML (line 2)"),
        ("- just a list\n", "top level must be a mapping"),
    ],
)
def test_bad_config_names_key_path_and_line(tmp_path: Path, yaml_text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, yaml_text))
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  - {id: a, url: /x, fps: 0}\nmetrics: {port: -5}\nextra: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = {p.split(" ")[0].rstrip(":") for p in info.value.problems}
    assert keys == {"cameras[0].fps", "metrics.port", "extra"}


def test_env_substitution_and_secret_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "hunter2")
    # The URL itself is what is wrong, so its text is what a careless message would quote.
    path = write(tmp_path, "cameras:\n  - {id: a, url: 'ftp://admin:${CAM_PASS}@h/s'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "cameras[0].url" in str(info.value) and "unsupported URL scheme" in str(info.value)
    assert "hunter2" not in str(info.value)
    cfg = load_config(write(tmp_path, "cameras:\n  - {id: a, url: 'rtsp://admin:${CAM_PASS}@h/s'}\n"))
    assert cfg.cameras[0].url == "rtsp://admin:hunter2@h/s"
    assert cfg.cameras[0].display_url == "rtsp://***@h/s"


def test_a_url_without_a_scheme_is_refused_without_quoting_its_credentials() -> None:
    """Text before a later "://" is not a scheme: quoting it would quote the password."""
    with pytest.raises(ConfigError) as info:
        validate_camera({"id": "c", "url": "admin:s3cr3t@cam/live?next=http://x"})
    assert "unsupported URL scheme" in str(info.value) and "s3cr3t" not in str(info.value)


def test_unset_env_var_is_reported_with_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_VAR", raising=False)
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.url: environment variable NOPE_VAR is not set"):
        load_config(write(tmp_path, "cameras:\n  - {id: a, url: 'rtsp://${NOPE_VAR}@h/s'}\n"))


def test_env_default_is_used_when_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDEO_DIR", raising=False)
    cfg = load_config(write(tmp_path, "cameras:\n  - {id: a, url: '${VIDEO_DIR:-/srv}/a.mp4'}\n"))
    assert cfg.cameras[0].url == "/srv/a.mp4"


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  - {id: a, url: /x.mp4}\n")
    cfg = load_config(path, {"redis.url": "redis://127.0.0.1:1/0", "metrics.port": 0})
    assert cfg.redis.url == "redis://127.0.0.1:1/0"
    assert cfg.metrics.port == 0


def test_stride_longer_than_window_is_rejected() -> None:
    with pytest.raises(ConfigError, match="stride must not exceed window"):
        parse_config({"cameras": [{"id": "a", "url": "/x"}], "models": {"temporal": {"window": 4, "stride": 8}}})


def test_config_is_frozen() -> None:
    cfg = parse_config({"cameras": [{"id": "a", "url": "/x"}]})
    with pytest.raises(Exception, match="frozen"):
        cfg.cameras[0].fps = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", ["demo.yaml", "cameras.yaml", "bench-cpu.yaml", "bench-gpu.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(REPO / "configs" / name)  # with nothing set in the environment
    assert cfg.cameras


def test_relative_paths_become_absolute_for_actors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best.pt").write_bytes(b"x")
    cfg = parse_config(
        {
            "cameras": [
                {"id": "a", "url": "videos/a.mp4"},
                {"id": "b", "url": "rtsp://h/s"},
                {"id": "c", "url": "/abs.mp4"},
            ],
            "models": {"detector": {"weights": "best.pt"}, "temporal": {"weights": "m/clip.pt"}},
            "events": {"spool": {"dir": "spool"}},
        }
    )
    assert [c.url for c in cfg.cameras] == [str(tmp_path / "videos/a.mp4"), "rtsp://h/s", "/abs.mp4"]
    assert cfg.models.detector.weights == str(tmp_path / "best.pt")
    assert cfg.models.temporal.weights == tmp_path / "m/clip.pt"
    assert cfg.events.spool.dir == tmp_path / "spool"
    named = parse_config({"cameras": [{"id": "a", "url": "/x"}], "models": {"detector": {"weights": "yolo11n.pt"}}})
    assert named.models.detector.weights == "yolo11n.pt"


def test_clip_head_resources_only_with_the_actor() -> None:
    base = {"cameras": [{"id": "a", "url": "/x"}]}
    assert parse_config(base).ray.clip_head == "hosts"
    with pytest.raises(ConfigError) as err:
        parse_config(base | {"ray": {"temporal": {"num_gpus": 1}}})
    assert "ray: temporal:" in str(err.value) and "clip_head: actor" in str(err.value)
    cfg = parse_config(base | {"ray": {"clip_head": "actor", "temporal": {"num_gpus": 1}}})
    assert cfg.ray.temporal.num_gpus == 1


def test_models_in_the_camera_hosts_take_only_torch_threads_from_ray_detector() -> None:
    base = {"cameras": [{"id": "a", "url": "/x"}]}
    assert parse_config(base).ray.placement == "auto"
    cfg = parse_config(base | {"ray": {"placement": "hosts", "cameras_per_host": 2, "detector": {"torch_threads": 2}}})
    assert cfg.ray.placement == "hosts" and cfg.ray.detector.torch_threads == 2
    for ray_cfg, key, where in (
        ({"detector": {"replicas": 2}}, "detector.replicas", "placement: hosts"),
        ({"classifier": {"num_cpus": 1}}, "classifier", "placement: hosts (only with workers)"),
        ({"host_calls_per_replica": 2}, "host_calls_per_replica", "placement: hosts (only with fused)"),
        ({"crops": {"replicas": 2}}, "crops", "placement: hosts (only with workers or fused)"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(base | {"ray": {"placement": "hosts", **ray_cfg}})
        assert f"ray: {key}: not used with {where}" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"vision": "hosts"}, "'vision: hosts' is 'placement: hosts'"),
        ({"fused": True}, "'fused: true' is 'placement: fused'"),
    ],
)
def test_replaced_placement_keys_name_the_new_key(old: dict[str, object], new: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"cameras": [{"id": "a", "url": "/x"}], "ray": old})
    assert f"ray.{next(iter(old))} no longer exists; use ray.placement" in str(err.value) and new in str(err.value)


def test_auto_placement_accepts_the_keys_of_either_layout_it_may_pick() -> None:
    base = {"cameras": [{"id": "a", "url": "/x"}]}
    cfg = parse_config(base | {"ray": {"pin_hosts": False, "detector": {"replicas": 2}, "classifier": {"num_cpus": 1}}})
    assert cfg.ray.placement == "auto" and not cfg.ray.pin_hosts and cfg.ray.detector.replicas == 2
    with pytest.raises(ConfigError) as err:
        parse_config(base | {"ray": {"host_calls_per_replica": 2}})
    assert "ray: host_calls_per_replica: not used with placement: auto (only with fused)" in str(err.value)


def test_pinning_hosts_is_a_hosts_layout_setting() -> None:
    base = {"cameras": [{"id": "a", "url": "/x"}]}
    assert parse_config(base | {"ray": {"placement": "hosts"}}).ray.pin_hosts
    assert not parse_config(base | {"ray": {"placement": "hosts", "pin_hosts": False}}).ray.pin_hosts
    with pytest.raises(ConfigError) as err:
        parse_config(base | {"ray": {"placement": "workers", "pin_hosts": False}})
    assert "ray: pin_hosts: not used with placement: workers (only with hosts)" in str(err.value)


def test_rays_own_metrics_are_off_where_vigil_starts_ray_and_cannot_be_set_for_a_cluster() -> None:
    from pipeline.runtime.driver import local_ray_settings

    base = {"cameras": [{"id": "a", "url": "/x"}]}
    quiet = local_ray_settings(parse_config(base).ray)
    assert quiet["enable_metrics_collection"] is False and quiet["event_stats"] is False
    back_on = local_ray_settings(parse_config(base | {"ray": {"internal_metrics": True}}).ray)
    assert back_on["enable_metrics_collection"] is True and back_on["event_stats"] is True
    with pytest.raises(ConfigError) as err:
        parse_config(base | {"ray": {"address": "auto", "internal_metrics": True}})
    assert "ray: internal_metrics: only used where Vigil starts Ray" in str(err.value)


@pytest.mark.parametrize(
    ("camera", "in_flight"),
    [
        ({"url": "/x.mp4"}, 16),  # a file read as fast as the pipeline goes: batches of its own frames
        ({"url": "/x.mp4", "loop": True}, 2),  # a looping file plays as a live camera
        ({"url": "rtsp://10.0.0.5/s"}, 2),  # live cameras must not queue
        ({"url": "rtsp://10.0.0.5/s", "mode": "file"}, 16),
        ({"url": "/x.mp4", "max_in_flight": 4}, 4),
    ],
)
def test_frames_in_flight_default_by_camera_mode(camera: dict[str, object], in_flight: int) -> None:
    assert parse_config({"cameras": [{"id": "a", **camera}]}).cameras[0].in_flight == in_flight


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cameras": [{"id": "a", "url": "rtsp://h/s", "fsp": 5}]}, "cameras[0].fsp: unknown key; did you mean 'fps'?"),
        (
            {"cameras": [{"id": "a", "url": "rtsp://h/s"}], "models": {"detector": {"weigths": "x.pt"}}},
            "models.detector.weigths: unknown key; did you mean 'weights'?",
        ),
        ({"cameras": [{"id": "a", "url": "rtsp://h/s"}], "redsi": {}}, "redsi: unknown key; did you mean 'redis'?"),
        ({"cameras": [{"id": "a", "url": "rtsp://h/s"}], "zzzz": 1}, "zzzz: unknown key"),
    ],
)
def test_an_unknown_key_names_the_key_it_resembles(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [message]


@pytest.mark.parametrize(
    "url",
    ["rtsp//admin:hunter2@10.0.0.5/x", "rtsp:/admin:hunter2@10.0.0.5/x", "admin:hunter2@10.0.0.5/x", "http:cam/x"],
)
def test_a_mistyped_url_is_refused_without_echoing_it(url: str) -> None:
    """Not taken for a file path, which would be made absolute and printed as 'file not found'."""
    with pytest.raises(ConfigError) as info:
        parse_config({"cameras": [{"id": "a", "url": url}]})
    [problem] = info.value.problems
    assert problem.startswith("cameras[0].url: looks like a URL with a mistyped scheme")
    assert "hunter2" not in problem and "10.0.0.5" not in problem


def test_a_bad_camera_id_says_what_an_id_may_hold() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"cameras": [{"id": "front door", "url": "rtsp://h/s"}]})
    assert info.value.problems == [
        "cameras[0].id: use letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters"
    ]
