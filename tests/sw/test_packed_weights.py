"""Packed weights in layer programs (issue 21 item 3): every WGT LOAD of a layer program is a
packed stream (``VALUES`` at s = 1), 1.625 bytes per stored weight slot on the ``s4 bench gemm``
layers (1 at s = 1); ``wgt_packed=False`` keeps the raw image, 2 bytes a weight."""

import numpy as np
import pytest

from s4accel.base.config import BANK, load_config
from s4accel.base.sparse import PackedWeights
from s4accel.hw.cmd.descriptors import Descriptor, LoadFormat, Opcode, Target
from s4accel.sim.bench.gemm import LAYERS
from s4accel.sim.model import perf_model
from s4accel.sw import layout
from s4accel.sw.program import Allocator, LayerParams, layer_program


def _wgt_loads(prog):
    out = []
    for raw in prog.descs:
        d = Descriptor.from_bits(int.from_bytes(raw, "little"))
        if int(d.header.opcode) == Opcode.LOAD.value and d.body.dma.target == Target.WGT:
            out.append((int(d.body.dma.fmt), int(d.body.dma.rows) * int(d.body.dma.row_bytes)))
    return out


def _program(cfg, m, k, n, s, packed_fmt):
    nb, nnz = -(-k // BANK), BANK // s
    w = PackedWeights(n=n, k=k, s=s, values=np.zeros((n, nb, nnz), np.int8),
                      indices=np.broadcast_to(np.arange(nnz, dtype=np.uint8), (n, nb, nnz)))
    return layer_program(perf_model._info(cfg), np.zeros((m, k), np.int8), w,
                         LayerParams("int8", mult=1, shift=0), Allocator(0x1000_0000, 1 << 40),
                         encode=perf_model._encode, wgt_packed=packed_fmt)


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("s", [1, 2, 16, 32])
def test_bench_layers_move_1_625_bytes_per_weight(layer, s):
    cfg = load_config("fpga")
    m, k, n = LAYERS[layer]
    raw, packed = (_wgt_loads(_program(cfg, m, k, n, s, p)) for p in (False, True))
    assert {f for f, _ in raw} == {LoadFormat.RAW.value}
    want = LoadFormat.VALUES if s == 1 else LoadFormat.PACKED
    assert {f for f, _ in packed} == {want.value}
    assert len(raw) == len(packed)
    per_weight = sum(b for _, b in packed) / (sum(b for _, b in raw) / 2)
    assert per_weight == (1.0 if s == 1 else 1.625), per_weight


def test_short_loads_pay_only_the_bus_padding():
    """Each packed LOAD is its words' bits rounded up to the bus width, never more."""
    cfg = load_config("fpga")
    bb = cfg.dram_bus_bits // 8
    for (m, k, n), s in (((32, 64, 10), 16), ((4, 33, 5), 32), ((3, 40, 17), 2)):
        raw, packed = (_wgt_loads(_program(cfg, m, k, n, s, p)) for p in (False, True))
        for (_, rb), (fmt, pb) in zip(raw, packed, strict=True):
            words = rb // (2 * cfg.cols)
            bits = words * layout.packed_word_bits(fmt, cfg.cols)
            assert pb == -(-bits // (8 * bb)) * bb, (m, k, n, s)
