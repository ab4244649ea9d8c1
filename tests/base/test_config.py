import pytest

from s4accel.base.config import Config, ConfigError, load_config, preset_names


def test_presets_load():
    assert {"tiny", "fpga", "antoum"} <= set(preset_names())
    tiny, fpga, antoum = (load_config(n) for n in ("tiny", "fpga", "antoum"))
    assert tiny.lanes == 8 and fpga.lanes == 64 and antoum.spus == 16
    assert tiny.vec_units == fpga.vec_units == 1 and antoum.vec_units == 8
    assert tiny.dram_gb_s is None and fpga.dram_gb_s is None
    assert fpga.name == "fpga"
    assert fpga.sparsities == (1, 2, 4, 8, 16, 32)


def test_antoum_matches_the_published_peak():
    """Issue 21 item 6: Antoum's 943.6 sparse-equivalent INT8 TOPS at 32x (14.7 dense TMAC/s),
    the S4 card's 82 GB/s LPDDR4x, and at most 32 MiB of on-chip SRAM."""
    antoum = load_config("antoum")
    # TOPS = 2 ops x MACs/cycle x clock x 32
    tops = 2 * antoum.spus * antoum.rows * antoum.cols * antoum.clock_mhz * 1e6 * 32 / 1e12
    assert antoum.peak_tops(32) == pytest.approx(tops)
    assert abs(tops / 943.6 - 1) < 0.005
    assert antoum.dense_tmac_s == pytest.approx(14.74, rel=0.005)
    assert antoum.peak_tops() == pytest.approx(tops / 32)
    assert antoum.dram_gb_s == 82
    # every SPU's ACT, WGT, OUT and parameter scratchpads, LUT and vector units' row buffers
    # (32 int32 values and a 32-bit mask a word, vec_max_row / 32 words); no L2
    per_spu = (antoum.act_sram_kib + antoum.wgt_sram_kib + antoum.out_sram_kib) * 1024 \
        + 128 * antoum.cols * 8 + 256 + antoum.vec_units * antoum.vec_max_row // 32 * 132
    assert antoum.sram_mib == pytest.approx(antoum.spus * per_spu / 2**20)
    assert antoum.sram_mib <= 32


def test_sram_counts_every_scratchpad():
    c = Config(spus=2, rows=2, cols=4, act_sram_kib=8, wgt_sram_kib=4, out_sram_kib=4)
    assert c.sram_kib_per_spu == 8 + 4 + 4 + 128 * 4 * 8 / 1024 + 0.25
    assert c.sram_mib == 2 * c.sram_kib_per_spu / 1024


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
    ("jpeg_max_width", 640, "jpeg_max_width must be a power of two from 16 to 2048, not 640"),
    ("jpeg_max_width", 4096, "jpeg_max_width must be a power of two from 16 to 2048, not 4096"),
    ("jpeg_max_width", 8, "jpeg_max_width must be a power of two from 16 to 2048, not 8"),
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
    ("dram_gb_s: 0\n", r"dram_gb_s must be a positive finite number of GB/s \(reads and writes "
                      r"together\) or absent, not 0$"),
    ("dram_gb_s: -82\n", r"dram_gb_s must be a positive finite number .*, not -82$"),
    ("dram_gb_s: .inf\n", r"dram_gb_s must be a positive finite number .*, not inf$"),
    ("dram_gb_s: .nan\n", r"dram_gb_s must be a positive finite number .*, not nan$"),
    ("dram_gb_s: true\n", r"dram_gb_s must be a positive finite number .*, not True$"),
    ("dram_gb_s: 82 GB/s\n", r"dram_gb_s must be a positive finite number .*, not '82 GB/s'$"),
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


def test_dram_gb_s_is_optional(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("dram_gb_s: 12.5\n")
    assert load_config(path).dram_gb_s == 12.5
    path.write_text("dram_gb_s: null\n")
    assert load_config(path).dram_gb_s is None
    assert Config().dram_gb_s is None
