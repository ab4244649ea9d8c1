"""cocotb testbench of the SPU (``hw/spu/spu.py``): scratchpad loads, GEMM blocks and stores,
checked against the golden model through the device layouts of ``sw/layout.py``."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from ...base.config import BANK
from ...hw.cmd.descriptors import GemmBody, LoadFormat, Target
from ...hw.spu.spu import SpuGeometry, int8_out_words
from ...sw import layout
from .base import start, started
from .core_job import pack_struct, random_case
from .streams import Sink, Source, StreamLoop


def words_of(image: bytes, bus_bits: int) -> list[int]:
    nb = bus_bits // 8
    image = image + b"\0" * (-len(image) % nb)
    return [int.from_bytes(image[i:i + nb], "little") for i in range(0, len(image), nb)]


class SpuTB:
    def __init__(self, dut, config, rng, idle=0.0, stall=0.0):
        self.dut, self.config, self.rng = dut, config, rng
        self.geom = SpuGeometry.of(config)
        self.load = Source(dut, "i_load", rng=rng, idle=idle)
        self.gemm = Source(dut, "i_gemm", rng=rng, idle=idle)
        self.store = Sink(dut, "o_store", rng=rng, stall=stall)
        self.loop = StreamLoop(dut.clk, [self.load, self.gemm], [self.store],
                               watches=[dut.gemm_done])
        for name in ("load_start", "store_start", "load_target", "load_addr", "load_fmt",
                     "store_addr", "store_beats"):
            getattr(dut, name).value = 0

    async def start(self):
        await start(self.dut, settle=False)

    async def pulse(self, name, **values):
        await RisingEdge(self.dut.clk)
        for k, v in values.items():
            getattr(self.dut, k).value = v
        getattr(self.dut, name).value = 1
        await RisingEdge(self.dut.clk)
        getattr(self.dut, name).value = 0

    async def load_image(self, target: Target, addr: int, image: bytes, fmt=LoadFormat.RAW):
        await self.pulse("load_start", load_target=target.value, load_addr=addr,
                         load_fmt=fmt.value)
        self.load.extend(words_of(image, self.geom.bus_bits))
        await self.loop.run_until(lambda: self.load.done, 20 * len(self.load.queue) + 600,
                                  f"load into {target.name}")

    async def run_gemm(self, body: dict, bound: int):
        done = self.loop.counts[self.dut.gemm_done]
        self.gemm.extend([pack_struct(GemmBody, body)])
        await self.loop.run_until(lambda: self.loop.counts[self.dut.gemm_done] > done, bound,
                                  "GEMM block")

    async def store_out(self, addr: int, nbytes: int) -> bytes:
        beats = nbytes // (self.geom.bus_bits // 8)
        self.store.beats = []
        await self.pulse("store_start", store_addr=addr, store_beats=beats)
        await self.loop.run_until(lambda: len(self.store.beats) >= beats, 10 * beats + 200,
                                  "store")
        nb = self.geom.bus_bits // 8
        return b"".join(v.to_bytes(nb, "little") for v in self.store.beats)


async def _one_layer(tb, rng, s, mode=None, lut_loaded=None, wgt_packed=False, **shape):
    cfg = tb.config
    R, C = cfg.rows, cfg.cols
    x, packed, params = random_case(rng, cfg, s, mode=mode, **shape)
    m, n, k = x.shape[0], packed.n, packed.k
    mt, nt = layout.tiles(m, n, R, C)
    bias, mult, shift = params.full(n)
    act_at, wgt_at, par_at, out_at = (int(rng.integers(0, 4)) for _ in range(4))
    await tb.load_image(Target.ACT, act_at, layout.act_image(x, R))
    if wgt_packed:    # the packed DRAM stream, decoded by the load path (hw/spu/wgt_unpack.py)
        await tb.load_image(Target.WGT, wgt_at,
                            layout.wgt_packed_image(packed, C, tb.geom.bus_bits // 8),
                            layout.wgt_format(s))
    else:
        await tb.load_image(Target.WGT, wgt_at, layout.wgt_image(packed, C))
    await tb.load_image(Target.PAR, par_at, layout.par_image(bias, mult, shift, n, C))
    if params.lut is not None:
        await tb.load_image(Target.LUT, 0, layout.lut_image(params.lut))
    body = {"act_addr": act_at, "wgt_addr": wgt_at, "par_addr": par_at, "out_addr": out_at,
            "banks": packed.banks, "m_tiles": mt, "n_tiles": nt,
            "log2s": s.bit_length() - 1, "mode": int(params.mode == "int8"),
            "relu": int(params.relu), "lut": int(params.lut is not None)}
    cycles = mt * nt * packed.banks * packed.nnz
    await tb.run_gemm(body, 20 * cycles + 500)
    if params.mode == "int8":   # bytes in the activation layout (hw/spu/spu.py)
        nbytes = int8_out_words(R, C, mt, nt) * C * 4
    else:
        nbytes = nt * mt * R * C * 4
    raw = await tb.store_out(out_at, nbytes)
    got = layout.decode_out(raw, m, n, R, C, params.mode)
    from .core_job import CoreJob
    exp = CoreJob.build(cfg, x, packed, params).expected
    assert got.shape == exp.shape and np.array_equal(got.astype(np.int64), exp.astype(np.int64)), \
        (f"s={s} mode={params.mode} m={m} n={n} k={k}: "
         f"{int((got.astype(np.int64) != exp.astype(np.int64)).sum())} outputs differ; "
         f"got {got[:2].tolist()} expected {exp[:2].tolist()}")


@cocotb.test()
async def layers_every_sparsity(dut):
    tb = await started(SpuTB, dut, "layers_every_sparsity")
    config, rng = tb.config, tb.rng
    for s in config.sparsities:
        for mode in ("raw", "int8"):
            await _one_layer(tb, rng, s, mode)


@cocotb.test()
async def packed_weights_every_sparsity(dut):
    """Weights loaded packed (PACKED; VALUES at s = 1) at every sparsity, K not whole banks
    (40, 72) and random, with idle cycles on the load stream: bit-exact layers."""
    tb = await started(SpuTB, dut, "packed_weights_every_sparsity", idle=0.2)
    config, rng = tb.config, tb.rng
    for s in config.sparsities:
        for k in (40, 72, None):
            await _one_layer(tb, rng, s, "raw", wgt_packed=True, k=k)


@cocotb.test()
async def int8_bytes_across_banks(dut):
    """int8 blocks of several activation banks (N up to three banks and not a multiple of
    cols, M not a multiple of rows), stored as bytes and decoded as the next layer's
    activations."""
    tb = await started(SpuTB, dut, "int8_bytes_across_banks", stall=0.2)
    config, rng = tb.config, tb.rng
    R, C = config.rows, config.cols
    for i in range(3):
        n = int(rng.integers(33, 97)) | 1                 # odd: never whole tiles or banks
        m = R + 1 if i == 0 else int(rng.integers(1, 3 * R))
        m += m % R == 0
        # the block's weights must fit the weight scratchpad: nt * banks * 32 / s words
        nt = -(-n // C)
        fits = [s for s in config.sparsities if nt * (BANK // s) <= tb.geom.wgt_depth]
        s = fits[int(rng.integers(0, len(fits)))]
        banks = min(3, tb.geom.wgt_depth // (nt * (BANK // s)))
        await _one_layer(tb, rng, s, "int8", m=m, n=n, k=int(rng.integers(1, BANK * banks + 1)))


@cocotb.test()
async def layers_with_stalls(dut):
    tb = await started(SpuTB, dut, "layers_with_stalls", idle=0.3, stall=0.4)
    config, rng = tb.config, tb.rng
    for _ in range(4):
        s = config.sparsities[int(rng.integers(0, len(config.sparsities)))]
        await _one_layer(tb, rng, s)
