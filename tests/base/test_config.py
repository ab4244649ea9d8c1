import pytest

from s4accel.base.config import Config, ConfigError, load_config, preset_names


def test_presets_load():
    assert {"tiny", "fpga", "antoum"} <= set(preset_names())
    tiny, fpga, antoum = (load_config(n) for n in ("tiny", "fpga", "antoum"))
    assert tiny.lanes == 8 and fpga.lanes == 64 and antoum.spus == 32
    assert fpga.name == "fpga"
    assert fpga.sparsities == (1, 2, 4, 8, 16, 32)


def test_frozen():
    cfg = load_config("tiny")
    with pytest.raises(AttributeError):
        cfg.rows = 4


@pytest.mark.parametrize("field,value,message", [
    ("rows", 12, "rows must be a positive power of two, not 12"),
    ("cols", 0, "cols must be a positive power of two, not 0"),
    ("bank", 24, "bank must be 32 (the sparse format's 5-bit index), not 24"),
    ("sparsities", (3,), "sparsities must be a non-empty subset"),
    ("spus", 3, "spus must be a positive power of two, not 3"),
])
def test_bad_values_named(field, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config(**{field: value})


def test_unknown_preset_and_field(tmp_path):
    with pytest.raises(ConfigError, match="no configuration preset named 'nope'"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: 2\nlanez: 4\n")
    with pytest.raises(ConfigError, match="unknown configuration field.*lanez"):
        load_config(bad)
