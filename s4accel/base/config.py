"""The frozen configuration object read by the hardware generator, models, driver and tools.

Named presets live in ``s4accel/base/configs/*.yaml``; load one with :func:`load_config`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["Config", "ConfigError", "load_config", "preset_names", "BANK", "SPARSITY_LEVELS",
           "PAR_WORDS", "LUT_BYTES", "L2_BASE"]

#: Bank size of the sparse format (docs/architecture.md, "Sparse format"): indices are 5 bits.
BANK = 32
#: Every sparsity level the format defines.
SPARSITY_LEVELS = (1, 2, 4, 8, 16, 32)
#: Words of an SPU's per-channel parameter scratchpad (``hw.spu.spu.PAR_DEPTH``), each
#: ``cols x 8`` bytes.
PAR_WORDS = 128
#: Bytes of an SPU's output lookup table.
LUT_BYTES = 256
#: Address of the on-chip L2 buffer (``Config.l2_kib``) in the DMA's address space.
L2_BASE = 0x2000_0000


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field and the value."""


def _is_pow2(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        and value & (value - 1) == 0


@dataclass(frozen=True)
class Config:
    """One accelerator configuration.

    Members
    -------
    name : str
        Preset name (informational).
    spus : int
        Number of sparse processing units.
    rows, cols : int
        Tensor-core array shape: ``rows`` output rows (tokens) times ``cols`` output channels.
        Each lane owns one int32 accumulator. Powers of two.
    bank : int
        Bank size of the sparse format. Fixed at 32 (5-bit indices).
    sparsities : tuple of int
        Sparsity levels the hardware accepts (a subset of 1, 2, 4, 8, 16, 32).
    acc_bits : int
        Accumulator width (32, the numerics contract).
    dram_bus_bits : int
        Width of the DRAM data bus in bits.
    act_sram_kib, wgt_sram_kib, out_sram_kib : int
        Scratchpad sizes per SPU in KiB (activations, weights, outputs).
    clock_mhz : float
        Target clock of the main domain.
    dram_gb_s : float or None
        DRAM bandwidth in GB/s (10^9 bytes a second) shared by reads and writes, for the
        performance model's projections (``s4 project``) of a memory system the RTL's AXI port
        (one read and one write channel of ``dram_bus_bits`` each) does not describe, such as
        the S4 card's LPDDR4x. ``None`` (the default): the model uses the AXI port, reads and
        writes each at ``dram_bus_bits / 8`` bytes a cycle.
    l2_kib : int
        The on-chip L2 buffer shared by the SPUs, in KiB (0: none; else a power of two, at
        least 4): SRAM at :data:`L2_BASE` in the DMA's address space, reached by LOAD and
        STORE descriptors like DRAM but inside the chip (``hw/bus/l2.py``).
    vec_max_row : int
        The vector unit of every SPU (``hw/vector/unit.py``, driven by VOP descriptors): the
        longest row its row operations (softmax, row max and sum) take, a multiple of 32 from
        32 to 32768; 0: no vector unit (a VOP is then an unknown opcode).
    vec_units : int
        Vector units per SPU (a power of two dividing ``rows``; 1, the default): a VOP runs
        the rows of a row tile in groups of ``vec_units``, one row a unit, all fed by the same
        ACT reads (row ``r``'s memory sees an address ``r`` cycles after row 0's), so a row
        tile takes ``rows / vec_units`` row times instead of ``rows``
        (:func:`~s4accel.hw.vector.vop.vop_cycles`).
    jpeg_decoders : int
        JPEG decoder instances of the codec wrapper (``DECODE`` descriptors,
        :mod:`s4accel.base.codec`), 0 .. 15; 0 (the default): no decoder, and a ``DECODE`` is
        ``UNKNOWN_OPCODE``. The RTL builds at most one (DECODEs run one at a time on the LOAD
        stage); the functional model takes any count.
    jpeg_max_width : int
        The widest image the decoder takes, a power of two from 16 to 2048 (the default, the
        table block's limit, ``codec.MAX_WIDTH``); a wider one ends its DECODE with
        ``DECODE_ERROR``, as a block the decoder cannot use does (``CAP_CODEC.max_width_log2``
        tells the driver). The colour stage's line buffers are 70 bytes a pixel of it
        (``hw/jpeg/color.py``): 76 of an ECP5's DP16KD block RAMs at 2048, 19 at 512.
    """

    name: str = "custom"
    spus: int = 1
    rows: int = 2
    cols: int = 4
    bank: int = BANK
    sparsities: tuple = SPARSITY_LEVELS
    acc_bits: int = 32
    dram_bus_bits: int = 64
    act_sram_kib: int = 8
    wgt_sram_kib: int = 4
    out_sram_kib: int = 4
    clock_mhz: float = 100.0
    dram_gb_s: float | None = None
    l2_kib: int = 0
    vec_max_row: int = 0
    vec_units: int = 1
    jpeg_decoders: int = 0
    jpeg_max_width: int = 2048

    def __post_init__(self):
        for field in ("spus", "rows", "cols", "dram_bus_bits", "act_sram_kib", "wgt_sram_kib",
                      "out_sram_kib"):
            value = getattr(self, field)
            if not _is_pow2(value):
                raise ConfigError(f"{field} must be a positive power of two, not {value!r}")
        if (isinstance(self.l2_kib, bool) or not isinstance(self.l2_kib, int)
                or (self.l2_kib != 0 and (not _is_pow2(self.l2_kib) or self.l2_kib < 4))
                or self.l2_kib > 256 * 1024):
            raise ConfigError(f"l2_kib must be 0 (no L2) or a power of two from 4 to 262144 "
                              f"(bursts never cross its 4 KiB-aligned end), not {self.l2_kib!r}")
        if (isinstance(self.vec_max_row, bool) or not isinstance(self.vec_max_row, int)
                or self.vec_max_row % 32 or not 0 <= self.vec_max_row <= 32768):
            raise ConfigError(f"vec_max_row must be 0 (no vector unit) or a multiple of 32 "
                              f"from 32 to 32768, not {self.vec_max_row!r}")
        if not _is_pow2(self.vec_units) or self.vec_units > self.rows:
            raise ConfigError(f"vec_units must be a power of two from 1 to rows "
                              f"({self.rows}), not {self.vec_units!r}")
        if (isinstance(self.jpeg_decoders, bool) or not isinstance(self.jpeg_decoders, int)
                or not 0 <= self.jpeg_decoders <= 15):
            raise ConfigError(f"jpeg_decoders must be an integer from 0 (no decoder) to 15, "
                              f"not {self.jpeg_decoders!r}")
        if (isinstance(self.jpeg_max_width, bool) or not isinstance(self.jpeg_max_width, int)
                or not 16 <= self.jpeg_max_width <= 2048 or not _is_pow2(self.jpeg_max_width)):
            raise ConfigError(f"jpeg_max_width must be a power of two from 16 to 2048, "
                              f"not {self.jpeg_max_width!r}")
        if self.dram_bus_bits not in (32, 64, 128, 256, 512):
            raise ConfigError(f"dram_bus_bits must be 32, 64, 128, 256 or 512, "
                              f"not {self.dram_bus_bits!r}")
        if self.bank != BANK:
            raise ConfigError(f"bank must be {BANK} (the sparse format's 5-bit index), "
                              f"not {self.bank!r}")
        if self.acc_bits != 32:
            raise ConfigError(f"acc_bits must be 32 (the numerics contract), not {self.acc_bits!r}")
        sparsities = (tuple(self.sparsities) if isinstance(self.sparsities, (list, tuple))
                      else None)
        if not sparsities or any(isinstance(s, bool) or not isinstance(s, int)
                                 or s not in SPARSITY_LEVELS for s in sparsities):
            raise ConfigError(f"sparsities must be a non-empty subset of {SPARSITY_LEVELS}, "
                              f"not {self.sparsities!r}")
        object.__setattr__(self, "sparsities", tuple(sorted(set(sparsities))))
        if (isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float))
                or not math.isfinite(self.clock_mhz) or self.clock_mhz <= 0):
            raise ConfigError(f"clock_mhz must be a positive finite number, not "
                              f"{self.clock_mhz!r}")
        if self.dram_gb_s is not None and (
                isinstance(self.dram_gb_s, bool) or not isinstance(self.dram_gb_s, (int, float))
                or not math.isfinite(self.dram_gb_s) or self.dram_gb_s <= 0):
            raise ConfigError(f"dram_gb_s must be a positive finite number of GB/s (reads and "
                              f"writes together) or absent, not {self.dram_gb_s!r}")

    @property
    def lanes(self) -> int:
        """Multiplier lanes per SPU."""
        return self.rows * self.cols

    @property
    def sram_kib_per_spu(self) -> float:
        """On-chip SRAM of one SPU in KiB: the ACT, WGT and OUT scratchpads, the parameter
        scratchpad (:data:`PAR_WORDS` words of ``cols x 8`` bytes), the LUT and the vector
        units' row buffers (``vec_max_row / 32`` words of 32 int32 values and a 32-bit mask
        each, ``hw/vector/unit.py``)."""
        vec = self.vec_units * (self.vec_max_row // BANK) * (BANK * 4 + 4)
        return (self.act_sram_kib + self.wgt_sram_kib + self.out_sram_kib
                + (PAR_WORDS * self.cols * 8 + LUT_BYTES + vec) / 1024)

    @property
    def sram_mib(self) -> float:
        """On-chip SRAM in MiB: every SPU's and the shared L2 (``l2_kib``)."""
        return (self.spus * self.sram_kib_per_spu + self.l2_kib) / 1024

    @property
    def dense_tmac_s(self) -> float:
        """Peak dense int8 multiply-accumulates a second, in 10^12: every lane of every SPU
        at ``clock_mhz``."""
        return self.spus * self.lanes * self.clock_mhz / 1e6

    def peak_tops(self, sparsity: int = 1) -> float:
        """Peak int8 TOPS (two operations per MAC), sparse-equivalent at ``sparsity``: a tile
        over K takes ``K / s`` cycles, so each stored-weight MAC stands for ``s`` dense ones."""
        return 2 * self.dense_tmac_s * sparsity

    def replace(self, **changes) -> Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sparsities"] = list(self.sparsities)
        return d

    @classmethod
    def from_dict(cls, values: dict) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        values = dict(values)
        if isinstance(values.get("sparsities"), list):
            values["sparsities"] = tuple(values["sparsities"])
        return cls(**values)


def _preset_dir():
    return resources.files("s4accel.base") / "configs"


def preset_names() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".yaml"))


def load_config(name_or_path) -> Config:
    """Load a preset by name (``tiny``, ``fpga``, ``antoum``) or a YAML file by path (a name
    ending in ``.yaml`` or ``.yml``). Every problem, a missing or unreadable file and YAML
    syntax included, is a one-line :class:`ConfigError` naming it."""
    if isinstance(name_or_path, Config):
        return name_or_path
    path = Path(str(name_or_path))
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"configuration file {str(path)!r} does not exist")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read configuration file {str(path)!r}: {e}") from e
        default_name = path.stem
    else:
        candidate = _preset_dir() / f"{name_or_path}.yaml"
        if not candidate.is_file():
            raise ConfigError(f"no configuration preset named {str(name_or_path)!r} "
                              f"(presets: {', '.join(preset_names())})")
        text = candidate.read_text()
        default_name = str(name_or_path)
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"configuration {str(name_or_path)!r} is not valid YAML: "
                          f"{where}{problem}") from e
    if not isinstance(values, dict):
        raise ConfigError(f"configuration {str(name_or_path)!r} must be a YAML mapping")
    values.setdefault("name", default_name)
    return Config.from_dict(values)
