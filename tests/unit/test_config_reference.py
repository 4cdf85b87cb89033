"""docs/configuration.md is generated from the config models and must match them."""

from pipeline.core import config_reference
from pipeline.core.config import VigilConfig


def test_shipped_configuration_reference_is_current() -> None:
    shipped = config_reference.OUT.read_text(encoding="utf-8")
    assert shipped == config_reference.render(), f"run: {config_reference.REGENERATE}"


def test_reference_names_every_top_level_key_and_nested_paths() -> None:
    text = config_reference.render()
    for name in VigilConfig.model_fields:
        assert f"\n## {name}\n" in text
    for path in ("`cameras[].fps`", "`models.detector.imgsz`", "`models.temporal.head.hidden_size`", "`ray.address`"):
        assert f"| {path} |" in text


def test_nested_defaults_come_from_the_parent_default() -> None:
    text = config_reference.render()
    expected = VigilConfig.model_fields["ray"].get_default(call_default_factory=True).classifier.num_cpus
    row = next(line for line in text.splitlines() if line.startswith("| `ray.classifier.num_cpus` |"))
    assert row.split(" | ")[2] == f"`{expected}`", row


def test_pipes_in_cells_are_escaped() -> None:
    for line in config_reference.render().splitlines():
        if line.startswith("| `"):
            assert line.replace("\\|", "").count("|") == 5, line
