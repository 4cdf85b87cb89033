"""Class names the config filters on are checked against the detector's once it has loaded."""

from __future__ import annotations

import logging

import pytest

from pipeline.core.config import parse_config
from pipeline.runtime.driver import Pipeline, PipelineError

COCO = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


def pipeline(object_classes: list[str] | None, crops: list[str] | None = None) -> Pipeline:
    raw: dict[str, object] = {
        "cameras": [{"id": "a", "url": "rtsp://h/s"}],
        "events": {"object_classes": object_classes},
    }
    if crops is not None:
        raw["models"] = {"crops": {"classes": crops}}
    p = Pipeline(parse_config(raw), "redis://127.0.0.1:1/0")
    p._class_names = COCO  # what the loaded detector reports
    return p


def test_classes_the_detector_has_pass_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        pipeline(["person", "car"])._check_classes()
        pipeline(None)._check_classes()
    assert caplog.records == []


def test_no_known_class_is_an_error_naming_the_key_and_the_detectors_classes() -> None:
    with pytest.raises(PipelineError) as info:
        pipeline(["Person", "vehicle"])._check_classes()
    assert str(info.value) == (
        "events.object_classes: none of Person, vehicle is a class of the detector "
        "(its classes: person, bicycle, car, motorcycle, bus, truck)"
    )


def test_a_misspelt_class_beside_known_ones_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        pipeline(["person", "persn"], crops=["person"])._check_classes()
    [record] = caplog.records
    assert record.getMessage().startswith("events.object_classes: persn is not a class of the detector")
