"""The static race check (s4accel.sw.hazards) on the programs the driver builds: every layer
program, over shapes that split into row chunks and channel-tile groups, raw and int8, every
sparsity, on tiny, fpga and tiny with 4 SPUs, orders every pair of clashing scratchpad accesses
by its tokens, engines and SYNCs. (Such a race passes on the functional model, which runs in
program order, and fails on the RTL only with some timings.)"""

import dataclasses

import numpy as np
import pytest

from s4accel.base.config import load_config
from s4accel.base.sparse import pack, prune
from s4accel.sw import scenarios
from s4accel.sw.driver import Driver, run
from s4accel.sw.hazards import races
from s4accel.sw.program import LayerParams
from s4accel.sim.model.device_model import ModelBackend


def _programs(cfg, rng, count):
    async def build():
        dev = Driver(ModelBackend(cfg))
        await dev.open()
        out = []
        for _ in range(count):
            m, k, n = (int(rng.integers(1, 80)), int(rng.integers(1, 300)),
                       int(rng.integers(1, 70)))
            s = int(rng.choice(cfg.sparsities))
            x = rng.integers(-128, 128, (m, k), dtype=np.int8)
            packed = pack(prune(rng.integers(-128, 128, (n, k), dtype=np.int8), s), s)
            if rng.random() < 0.3:
                params = LayerParams("raw", bias=rng.integers(-1000, 1000, n))
            else:
                params = scenarios.int8_params(rng, x, packed, lut=bool(rng.random() < 0.3))
            mark = dev.alloc.top
            try:
                out.append((f"{m}x{k}x{n} s={s} {params.mode}", dev.program(x, packed, params)))
            except ValueError:
                pass      # a shape the device cannot take (K too large for s), said so
            dev.alloc.top = mark
        return out
    return run(build())


def _program(cfg, x, packed, params):
    async def build():
        dev = Driver(ModelBackend(cfg))
        await dev.open()
        return dev.program(x, packed, params)
    return run(build())


@pytest.mark.parametrize("config,spus", [("tiny", None), ("fpga", None), ("tiny", 4)])
def test_layer_programs_have_no_races(config, spus, rng):
    cfg = load_config(config)
    if spus:
        cfg = dataclasses.replace(cfg, spus=spus)
    progs = _programs(cfg, rng, 80)
    assert len(progs) >= 40
    for label, prog in progs:
        found = races(prog.descs, rows=cfg.rows, cols=cfg.cols, spus=cfg.spus)
        assert not found, f"{config} {label}: {found[:3]}"


def test_the_chunked_one_group_layer_of_the_ci_failure():
    """19x40x30 at s = 2 on tiny (three row chunks, one channel group): the third chunk's
    activations were loaded into the first chunk's half while its GEMM could still run
    (seen on the RTL: 3 wrong outputs; fixed in sw/program.py)."""
    cfg = load_config("tiny")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (19, 40), dtype=np.int8)
    packed = pack(prune(rng.integers(-128, 128, (30, 40), dtype=np.int8), 2), 2)
    prog = _program(cfg, x, packed, scenarios.int8_params(rng, x, packed, lut=False))
    gemms = [d for d in prog.descs if d[0] & 0xF == 3]
    assert len(gemms) == 3        # the shape still takes three chunks
    assert races(prog.descs, rows=cfg.rows, cols=cfg.cols, spus=cfg.spus) == []


def test_a_missing_token_is_a_race():
    """Dropping a wait flag from a GEMM of a real program makes the check report it."""
    cfg = load_config("tiny")
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (40, 200), dtype=np.int8)
    packed = pack(prune(rng.integers(-128, 128, (40, 200), dtype=np.int8), 4), 4)
    prog = _program(cfg, x, packed, scenarios.int8_params(rng, x, packed, lut=False))
    descs = [bytes(d) for d in prog.descs]
    assert races(descs, rows=cfg.rows, cols=cfg.cols) == []
    broken = 0
    for i, d in enumerate(descs):
        if d[0] & 0xF == 3 and d[0] & 0x10:       # a GEMM waiting for its loads (wait_prev)
            mutated = descs[:i] + [bytes([d[0] & ~0x10]) + d[1:]] + descs[i + 1:]
            assert races(mutated, rows=cfg.rows, cols=cfg.cols), f"GEMM {i} without wait_prev"
            broken += 1
    assert broken >= 2


def test_decode_is_a_load_stage_act_write():
    """DECODE writes its ACT span on the LOAD engine: a GEMM reading those words needs the
    DECODE's ld2ex token (or a SYNC); with it there is no race."""
    from s4accel.hw.cmd.descriptors import Opcode
    from s4accel.sw.codec import decode_descriptor
    from s4accel.sw.hazards import races
    from s4accel.sw.program import descriptor

    def prog(sig):
        dec = decode_descriptor(table_addr=0, bits_addr=64, bits_len=10, act_addr=4, lane=1,
                                crop=(0, 0, 8, 8), out_h=4, out_w=4, sig_next=sig)
        gemm = descriptor(Opcode.GEMM, wait_prev=sig, gemm={
            "act_addr": 10, "wgt_addr": 0, "par_addr": 0, "out_addr": 0, "banks": 1,
            "m_tiles": 2, "n_tiles": 1, "log2s": 0, "mode": 0})
        return [dec, gemm, descriptor(Opcode.COMPLETE)]

    found = races(prog(0), rows=2, cols=4)
    assert len(found) == 1 and found[0][0].mem == "ACT" and found[0][0].write
    assert races(prog(1), rows=2, cols=4) == []


@pytest.mark.parametrize("name,s", [("tiny", 1), ("tiny", 8), ("fpga", 8)])
def test_encoder_programs_have_no_races_and_their_par_tokens_matter(name, s, rng):
    """Encoder layer programs (VOPs reading PAR, TO_WGT writing WGT) have no races; without
    the wait of the last PAR or WGT load that waits for the execute stage, the check reports
    a VOP's parameter or TO_WGT words clashing with that load (it knows a LAYERNORM's and a
    per-channel ADD's PAR reads and a TO_WGT's WGT writes)."""
    from s4accel.hw.cmd.descriptors import Opcode
    from s4accel.sw.encoder import encoder_program
    from s4accel.sw.program import Allocator, DeviceInfo
    info = DeviceInfo.from_config(load_config(name))
    _, layers, x, mask_n = scenarios.encoder_case(rng, info, s,
                                                  layers=2 if name == "tiny" else 1)
    prog = encoder_program(info, layers, x, alloc=Allocator(0x1000, 1 << 28), mask_n=mask_n)
    assert races(prog.descs, rows=info.rows, cols=info.cols) == []
    last = max(i for i, d in enumerate(prog.descs)
               if d[0] & 15 == Opcode.LOAD.value and (d[0] >> 5) & 1)
    mutant = list(prog.descs)
    mutant[last] = bytes([mutant[last][0] & ~(1 << 5)]) + mutant[last][1:]
    found = races(mutant, rows=info.rows, cols=info.cols)
    assert any(a.mem in ("PAR", "WGT") and
               {prog.descs[a.desc][0] & 15, prog.descs[b.desc][0] & 15}
               == {Opcode.VOP.value, Opcode.LOAD.value} for a, b in found), found
