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


@pytest.mark.parametrize("text, message", [
    ("rows: 2\ncols: [4\n", r"bad\.yaml' is not valid YAML: line \d+, column \d+: "),
    ("rows: 2\n  cols: 4\n", r"bad\.yaml' is not valid YAML: line 2, column 7: "),
    ("sparsities: 8\n", r"sparsities must be a non-empty subset of \(1, 2, 4, 8, 16, 32\), "
                        r"not 8"),
    ("sparsities: [true]\n", r"sparsities must be a non-empty subset of .*, not \(True,\)"),
    ("clock_mhz: .inf\n", r"clock_mhz must be a positive finite number, not inf"),
    ("clock_mhz: .nan\n", r"clock_mhz must be a positive finite number, not nan"),
    ("clock_mhz: true\n", r"clock_mhz must be a positive finite number, not True"),
    ("- rows\n", r"must be a YAML mapping"),
    ("1: 2\n", r"unknown configuration field\(s\): 1"),
])
def test_yaml_errors_name_the_field(tmp_path, text, message):
    """Issue 20, CLI paragraph: a YAML syntax error, ``sparsities: 8`` and ``clock_mhz: .inf``
    were a traceback or accepted; each is a one-line ConfigError naming the problem."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_config(bad)
    assert "\n" not in str(e.value)


def test_missing_yaml_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"configuration file .*nope\.yaml' does not exist"):
        load_config(tmp_path / "nope.yaml")
