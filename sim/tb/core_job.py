"""Cut a GEMM into tensor-core tiles and encode the core's stream beats as integers; drive
them into a tensor core (:class:`CoreTB`); draw random test cases (:func:`random_case`).

Used by the cocotb testbenches (tensor core, SPU), the benchmark and ``s4 gemm --backend rtl``.
A tile covers ``rows`` rows of X and ``cols`` output channels over the whole of K; tiles are
issued row-tile major (all channel tiles of rows 0..R-1 first). Rows and channels beyond M and
N are zero padding and are dropped from the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...base import golden
from ...base.config import BANK, Config
from ...base.sparse import PackedWeights, pack, prune
from . import base
from .streams import Sink, Source, StreamLoop

__all__ = ["OutputParams", "CoreJob", "CoreTB", "encode_fields", "pack_struct", "random_case"]


@dataclass
class OutputParams:
    """How a GEMM's accumulators are finished (see :mod:`s4accel.base.golden`)."""
    mode: str = "raw"              # "raw" or "int8"
    bias: np.ndarray | None = None  # int32 [N]
    mult: np.ndarray | None = None  # 0..65535 [N]
    shift: np.ndarray | None = None  # 0..47 [N]
    relu: bool = False
    lut: np.ndarray | None = None   # int8 [256]

    def full(self, n):
        bias = np.zeros(n, np.int64) if self.bias is None else np.asarray(self.bias, np.int64)
        mult = np.ones(n, np.int64) if self.mult is None else np.asarray(self.mult, np.int64)
        shift = np.zeros(n, np.int64) if self.shift is None else np.asarray(self.shift, np.int64)
        return bias, mult, shift


def encode_fields(columns, widths) -> list[int]:
    """Pack unsigned integer columns (each [beats]) of the given bit widths, LSB first, into one
    Python int per beat."""
    beats = len(columns[0])
    total = sum(widths)
    bits = np.zeros((beats, -(-total // 8) * 8), dtype=np.uint8)
    pos = 0
    for col, w in zip(columns, widths, strict=True):
        col = np.asarray(col).astype(np.uint64)
        bits[:, pos:pos + w] = (col[:, None] >> np.arange(w, dtype=np.uint64)) & 1
        pos += w
    raw = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def pack_struct(layout, values: dict) -> int:
    """Encode one value of an Amaranth ``StructLayout`` (nested arrays as lists) as an int."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    def enc(shape, value):
        if isinstance(shape, type) and issubclass(shape, (data.Struct, data.Union)):
            shape = data.Layout.cast(shape)
        if isinstance(shape, data.UnionLayout):
            (name, v), = value.items()
            return enc(shape[name].shape, v)
        if isinstance(shape, data.ArrayLayout):
            w = Shape.cast(shape.elem_shape).width
            out = 0
            for i, v in enumerate(value):
                out |= enc(shape.elem_shape, v) << (i * w)
            return out
        if isinstance(shape, data.StructLayout):
            out = 0
            for name, f in shape:
                out |= enc(f.shape, value.get(name, 0)) << f.offset
            return out
        width = Shape.cast(shape).width
        v = int(getattr(value, "value", value))
        return v & ((1 << width) - 1)

    return enc(layout, values)


@dataclass
class CoreJob:
    """All stream beats of one GEMM on the tensor core, and the expected result beats."""
    config: Config
    m: int
    n: int
    k: int
    s: int
    cmds: list = field(default_factory=list)
    acts: list = field(default_factory=list)
    wgts: list = field(default_factory=list)
    lut_writes: list = field(default_factory=list)
    expected: np.ndarray | None = None     # [M, N] int32 (raw) or int8 values
    tiles: list = field(default_factory=list)  # (row0, col0) per tile, in issue order

    @property
    def beats_out(self):
        return len(self.tiles) * self.config.rows

    @classmethod
    def build(cls, config: Config, x, packed: PackedWeights, params: OutputParams | None = None):
        from ...hw.core.requant import OutMode, lut_write_layout
        from ...hw.core.tensor_core import tile_cmd_layout

        params = params or OutputParams()
        x = np.asarray(x)
        if x.dtype != np.int8 or x.ndim != 2 or x.shape[1] != packed.k:
            raise ValueError(f"x must be int8 [M, {packed.k}], not {x.dtype} {x.shape}")
        if params.mode not in ("raw", "int8"):
            raise ValueError(f"output mode must be 'raw' or 'int8', not {params.mode!r}")
        R, C = config.rows, config.cols
        if packed.s not in config.sparsities:
            raise ValueError(f"sparsity {packed.s} is not supported by configuration "
                             f"{config.name} ({config.sparsities})")
        m, n, k = x.shape[0], packed.n, packed.k
        nb, nnz = packed.banks, packed.nnz
        if nb >= 1 << 16:
            raise ValueError(f"K={k} needs {nb} banks, more than a tile command holds (65535)")
        mt, nt = -(-m // R), -(-n // C)
        job = cls(config=config, m=m, n=n, k=k, s=packed.s)

        bias, mult, shift = params.full(n)
        if params.mode == "raw":
            job.expected = golden.gemm_raw(x, packed, bias)
        else:
            job.expected = golden.gemm_int8(x, packed, bias, mult, shift, relu=params.relu,
                                            lut=params.lut)
        if params.lut is not None:
            lut = np.asarray(params.lut, np.int8)
            job.lut_writes = [pack_struct(lut_write_layout, {"addr": a, "data": int(lut[a])})
                              for a in range(256)]

        # padded operands
        xp = np.zeros((mt * R, nb * BANK), np.int8)
        xp[:m, :k] = x
        vals = np.zeros((nt * C, nb, nnz), np.int8)
        idxs = np.zeros((nt * C, nb, nnz), np.uint8)
        vals[:n], idxs[:n] = packed.values, packed.indices
        idxs[n:] = np.arange(nnz, dtype=np.uint8)
        pad = nt * C - n
        bias_p = np.concatenate([bias, np.zeros(pad, np.int64)])
        mult_p = np.concatenate([mult, np.zeros(pad, np.int64)])
        shift_p = np.concatenate([shift, np.zeros(pad, np.int64)])

        # weight beats per channel tile: [nb * nnz] beats of C (value, index) pairs
        wgt_tiles = []
        for j in range(nt):
            v = vals[j * C:(j + 1) * C].reshape(C, -1).T.astype(np.uint8)   # [beats, C]
            ix = idxs[j * C:(j + 1) * C].reshape(C, -1).T
            cols, widths = [], []
            for c in range(C):
                cols += [v[:, c], ix[:, c]]
                widths += [8, 5]
            wgt_tiles.append(encode_fields(cols, widths))
        # activation windows per row tile: [nb] beats of R x 32 bytes
        act_tiles = []
        for i in range(mt):
            blk = xp[i * R:(i + 1) * R].reshape(R, nb, BANK).transpose(1, 0, 2)
            act_tiles.append([int.from_bytes(b.tobytes(), "little") for b in blk])

        cmd_layout = tile_cmd_layout(C)
        mode = OutMode.RAW if params.mode == "raw" else OutMode.INT8
        log2s = packed.s.bit_length() - 1
        for i in range(mt):
            for j in range(nt):
                sl = slice(j * C, (j + 1) * C)
                job.cmds.append(pack_struct(cmd_layout, {
                    "log2s": log2s, "banks": nb, "mode": mode.value,
                    "relu": int(params.relu), "lut": int(params.lut is not None),
                    "bias": bias_p[sl].tolist(), "mult": mult_p[sl].tolist(),
                    "shift": shift_p[sl].tolist()}))
                job.acts.extend(act_tiles[i])
                job.wgts.extend(wgt_tiles[j])
                job.tiles.append((i * R, j * C))
        return job

    def decode(self, beats) -> np.ndarray:
        """Turn result beats (ints) into the [M, N] output; checks count and ``last`` flags."""
        R, C = self.config.rows, self.config.cols
        if len(beats) != self.beats_out:
            raise AssertionError(f"expected {self.beats_out} result beats, got {len(beats)}")
        out = np.zeros((len(self.tiles) and max(t[0] for t in self.tiles) + R,
                        max(t[1] for t in self.tiles) + C), np.int64)
        for t, (r0, c0) in enumerate(self.tiles):
            for r in range(R):
                beat = beats[t * R + r]
                last = (beat >> (32 * C)) & 1
                if last != (r == R - 1):
                    raise AssertionError(f"tile {t} row {r}: last flag is {last}")
                for c in range(C):
                    v = (beat >> (32 * c)) & 0xFFFFFFFF
                    out[r0 + r, c0 + c] = v - (1 << 32) if v >> 31 else v
        out = out[:self.m, :self.n]
        return out.astype(np.int32 if self.expected.dtype == np.int32 else np.int8) \
            if np.all((out >= -(1 << 31)) & (out < (1 << 31))) else out

    def mismatches(self, got) -> str:
        """A short report of the first differing tile/element, or '' when equal."""
        exp = self.expected.astype(np.int64)
        got = np.asarray(got).astype(np.int64)
        if got.shape != exp.shape:
            return f"shape {got.shape} != expected {exp.shape}"
        bad = np.argwhere(got != exp)
        if not len(bad):
            return ""
        r, c = bad[0]
        R, C = self.config.rows, self.config.cols
        return (f"{len(bad)} of {exp.size} outputs differ; first at row {r}, channel {c} "
                f"(tile rows {r // R * R}.., channels {c // C * C}..): got {got[r, c]}, "
                f"expected {exp[r, c]}")


class CoreTB:
    """Owns the clock, reset and the stream drivers of one tensor core."""

    def __init__(self, dut, config: Config, rng=None, idle=0.0):
        self.dut, self.config = dut, config
        self.rng = rng or np.random.default_rng(0)
        r = self.rng
        self.cmd = Source(dut, "i_cmd", rng=r, idle=idle)
        self.act = Source(dut, "i_act", rng=r, idle=idle)
        self.wgt = Source(dut, "i_wgt", rng=r, idle=idle)
        self.lut = Source(dut, "i_lut", rng=r, idle=idle)
        self.res = Sink(dut, "o_res", rng=r)   # the core's output has no backpressure
        self.loop = StreamLoop(dut.clk, [self.cmd, self.act, self.wgt, self.lut], [self.res])

    async def start(self):
        await base.start(self.dut)

    def counters(self) -> dict:
        d = self.dut
        return {name: getattr(d, name).value.to_unsigned() for name in
                ("busy_cycles", "mac_cycles", "stall_input_cycles", "stall_output_cycles",
                 "tiles_done")}

    def cycle_bound(self, job: CoreJob) -> int:
        ideal = len(job.acts) + len(job.wgts) + job.beats_out + len(job.lut_writes)
        slow = 1.0 / max(0.05, 1 - self.cmd.idle)
        return int(200 + 8 * ideal * slow)

    async def run(self, job: CoreJob):
        """Run one job to completion; return ``(output [M, N], cycles)``."""
        if job.lut_writes:
            self.lut.extend(job.lut_writes)
            await self.loop.run_until(lambda: self.lut.done, 4 * 256 + 100, "LUT load")
        self.res.beats = []
        self.cmd.extend(job.cmds)
        self.act.extend(job.acts)
        self.wgt.extend(job.wgts)
        want = job.beats_out
        cycles = await self.loop.run_until(lambda: len(self.res.beats) >= want,
                                           self.cycle_bound(job), "tensor-core job")
        return job.decode(self.res.beats), cycles

    async def check(self, job: CoreJob, label: str):
        got, cycles = await self.run(job)
        report = job.mismatches(got)
        assert not report, f"{label}: RTL differs from the golden model: {report}"
        return cycles


def random_case(rng, config: Config, s, *, mode=None, m=None, n=None, k=None):
    R, C = config.rows, config.cols
    m = m or int(rng.integers(1, 2 * R + 2))
    n = n or int(rng.integers(1, 2 * C + 2))
    k = k or int(rng.integers(1, 130))
    x = rng.integers(-128, 128, size=(m, k), dtype=np.int8)
    w = prune(rng.integers(-128, 128, size=(n, k), dtype=np.int8), s)
    packed = pack(w, s)
    mode = mode or ("raw", "int8")[int(rng.integers(0, 2))]
    if mode == "raw":
        params = OutputParams("raw", bias=rng.integers(-(1 << 31), 1 << 31, n))
    else:
        # scales that put most outputs inside the int8 range (a random shift saturates nearly
        # everything and would hide rounding errors), plus a few extreme channels
        bias = rng.integers(-(1 << 12), 1 << 12, n)
        peak = np.abs(golden.gemm_raw(x, packed, bias).astype(np.int64)).max(axis=0) + 1
        mult = rng.integers(1 << 14, 1 << 16, n)
        shift = np.array([int(p * mu).bit_length() for p, mu in zip(peak, mult, strict=True)]) - 8
        shift = np.clip(shift + rng.integers(-1, 3, n), 0, 47)
        wild = rng.random(n) < 0.15
        mult[wild] = rng.integers(0, 1 << 16, int(wild.sum()))
        shift[wild] = rng.integers(0, 48, int(wild.sum()))
        params = OutputParams(
            "int8", bias=bias, mult=mult, shift=shift, relu=bool(rng.integers(0, 2)),
            lut=rng.integers(-128, 128, 256, dtype=np.int8) if rng.integers(0, 2) else None)
    return x, packed, params
