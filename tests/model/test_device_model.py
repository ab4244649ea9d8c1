"""The functional model on its own, driven register by register: odd ring and mask settings."""

import contextlib
import signal

import pytest

from s4accel.base.config import load_config
from s4accel.hw.cmd.descriptors import DESC_BYTES, ErrorCode, Opcode
from s4accel.sim.model.device_model import DeviceModel
from s4accel.sw import regs
from s4accel.sw.program import descriptor

BASE = 0x1000_0000
SIZE = 1 << 20


@contextlib.contextmanager
def time_limit(seconds=10):
    """Fail instead of hanging (the model has no cycle bound of its own to hit)."""
    def expired(signum, frame):
        raise TimeoutError(f"the model did not return within {seconds} s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def make_model(config="tiny", *, ring_base=BASE, win_base=BASE, win_limit=BASE + SIZE,
               dram_base=BASE, dram_size=SIZE):
    m = DeviceModel(load_config(config), dram_base, dram_size)
    m.write32(regs.WIN0_BASE, win_base)
    m.write32(regs.WIN0_LIMIT, win_limit)
    m.write32(regs.WIN_CTRL, 0x010101)
    m.write32(regs.RING_BASE, ring_base)
    return m


def put(m, slot, desc, ring_base=BASE):
    m.mem_write(ring_base + slot * DESC_BYTES, desc)


def status(m):
    s = m.read32(regs.STATUS)
    f = regs.REGISTERS["STATUS"]
    return f.field("error").get(s), ErrorCode(f.field("err_code").get(s))


def start(m, size, tail):
    m.write32(regs.RING_SIZE, size)
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("enable").mask)
    m.write32(regs.RING_TAIL, tail)


# -- item 1 of issue 20: spu_mask naming only SPUs the device lacks ------------------------------

def _dma(addr, nbytes):
    return {"dram_addr": addr, "stride": nbytes, "row_bytes": nbytes, "rows": 1,
            "target": 0, "sram_addr": 0}


@pytest.mark.parametrize("op", ["load", "store", "gemm"])
def test_mask_of_absent_spus_is_bad_field(op):
    """tiny has one SPU: a mask naming only SPU 8 selects nothing, which is BAD_FIELD (not an
    IndexError, and not a GEMM that silently skips its checks)."""
    m = make_model("tiny")
    assert m.config.spus == 1
    buf = BASE + 0x8000
    desc = {"load": descriptor(Opcode.LOAD, dma=_dma(buf, 64), spu_mask=0x0100),
            "store": descriptor(Opcode.STORE, dma=_dma(buf, 64), spu_mask=0x0100),
            # log2s = 6 is itself a bad field: it must not go unchecked either
            "gemm": descriptor(Opcode.GEMM, spu_mask=0x0100,
                               gemm={"banks": 1, "m_tiles": 1, "n_tiles": 1, "log2s": 6})}[op]
    put(m, 0, descriptor(Opcode.NOP))
    put(m, 1, desc)
    start(m, 64, 2)
    assert status(m) == (1, ErrorCode.BAD_FIELD)
    assert m.read32(regs.ERR_ADDR) == BASE + DESC_BYTES


def test_mask_with_one_present_spu_ignores_the_absent_ones():
    m = make_model("tiny")
    put(m, 0, descriptor(Opcode.GEMM, spu_mask=0x0101,
                         gemm={"banks": 1, "m_tiles": 1, "n_tiles": 1}))
    put(m, 1, descriptor(Opcode.COMPLETE))
    start(m, 64, 2)
    assert status(m) == (0, ErrorCode.NONE)
    assert regs.REGISTERS["IRQ"].field("done").get(m.read32(regs.IRQ))


# -- items 2 and 3 of issue 20: a tail the head never reaches, a ring past 2**32 ----------------

@pytest.mark.parametrize("size, tail", [(4, 4), (4, 9), (0, 1)])
def test_unreachable_tail_is_bad_ring(size, tail):
    """A tail the head never meets (RING_TAIL >= RING_SIZE; RING_SIZE = 0 included) would run the
    ring for ever: the fetch is refused with BAD_RING at the head's slot, nothing runs, and the
    ring is emptied (head = tail). A sane ring then works again."""
    m = make_model("tiny")
    for slot in range(max(size, 1)):
        put(m, slot, descriptor(Opcode.NOP))
    with time_limit():
        start(m, size, tail)
    assert status(m) == (1, ErrorCode.BAD_RING)
    assert m.read32(regs.ERR_ADDR) == BASE
    assert m.read32(regs.RING_HEAD) == tail
    assert m.read32(regs.PERF_DESC) == 0
    m.write32(regs.IRQ, regs.REGISTERS["IRQ"].field("error").mask)
    m.write32(regs.RING_SIZE, 16)
    m.write32(regs.CTRL, m.read32(regs.CTRL) | regs.REGISTERS["CTRL"].field("soft_reset").mask)
    put(m, tail, descriptor(Opcode.COMPLETE))
    m.write32(regs.RING_TAIL, tail + 1)
    assert status(m) == (0, ErrorCode.NONE)
    assert regs.REGISTERS["IRQ"].field("done").get(m.read32(regs.IRQ))


def test_head_outside_the_ring_is_bad_ring():
    """A head left outside the ring (a soft reset with TAIL >= SIZE sets head = tail) would
    fetch a slot past the ring's end: BAD_RING at that slot's address."""
    m = make_model("tiny")
    m.write32(regs.RING_SIZE, 4)
    m.write32(regs.RING_TAIL, 6)
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("soft_reset").mask)
    assert m.read32(regs.RING_HEAD) == 6
    start(m, 4, 1)
    assert status(m) == (1, ErrorCode.BAD_RING)
    assert m.read32(regs.ERR_ADDR) == BASE + 6 * DESC_BYTES


def test_fetch_address_wraps_at_2_to_the_32():
    """RING_BASE + head * 32 is a 32-bit sum in the RTL: slot 2 of a ring at 2**32 - 64 is at
    address 0. The window and DRAM here are at 0, so the wrapped fetch works."""
    top = (1 << 32) - 2 * DESC_BYTES
    m = make_model("tiny", ring_base=top, win_base=0, win_limit=SIZE, dram_base=0)
    # slots 0 and 1 (the top 64 bytes of the address space) are outside every window: start at
    # slot 2 by a soft reset with tail = 2
    m.write32(regs.RING_SIZE, 8)
    m.write32(regs.RING_TAIL, 2)
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("soft_reset").mask)
    assert m.read32(regs.RING_HEAD) == 2
    m.mem_write(0, descriptor(Opcode.NOP))
    m.mem_write(DESC_BYTES, descriptor(Opcode.COMPLETE))
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("enable").mask)
    m.write32(regs.RING_TAIL, 4)
    assert status(m) == (0, ErrorCode.NONE)
    assert regs.REGISTERS["IRQ"].field("done").get(m.read32(regs.IRQ))
    assert m.read32(regs.RING_HEAD) == 4


def test_fetch_past_2_to_the_32_is_out_of_window():
    """A ring slot at or past 2**32 before the wrap: no crash, the fetch of slot 1 of a ring at
    2**32 - 32 is at address 0, outside the window here, so OUT_OF_WINDOW at address 0."""
    m = make_model("tiny", ring_base=(1 << 32) - DESC_BYTES)
    m.write32(regs.RING_SIZE, 8)
    m.write32(regs.RING_TAIL, 1)
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("soft_reset").mask)
    m.write32(regs.CTRL, regs.REGISTERS["CTRL"].field("enable").mask)
    m.write32(regs.RING_TAIL, 2)
    assert status(m) == (1, ErrorCode.OUT_OF_WINDOW)
    assert m.read32(regs.ERR_ADDR) == 0


# -- issue 21 item 3: packed weight loads (DmaBody.fmt) ------------------------------------------

@pytest.mark.parametrize("config", ["tiny", "fpga"])
@pytest.mark.parametrize("s", [1, 2, 4, 8, 16, 32])
def test_packed_weight_load_writes_the_raw_words(config, s, rng):
    """A packed LOAD (PACKED; VALUES at s = 1) of K = 40 / 72 weights leaves the WGT scratchpad
    exactly as the raw LOAD of ``wgt_image`` does, at a random word address; the raw LOAD
    (fmt 0) writes its bytes unchanged."""
    import numpy as np

    from s4accel.base.sparse import pack, prune
    from s4accel.hw.cmd.descriptors import LoadFormat, Target
    from s4accel.sw import layout
    cfg = load_config(config)
    C, bb = cfg.cols, cfg.dram_bus_bits // 8
    for k in (40, 72):
        p = pack(prune(rng.integers(-128, 128, (int(rng.integers(1, 3 * C)), k))
                       .astype(np.int8), s), s)
        raw = layout.wgt_image(p, C)
        stream = layout.wgt_packed_image(p, C, bb)
        words = len(layout.unpack_wgt_stream(stream, C, layout.wgt_format(s))) // (2 * C)
        sram = int(rng.integers(0, 8))
        spads = []
        for fmt, img in ((LoadFormat.RAW, raw + bytes(-len(raw) % bb)),
                         (layout.wgt_format(s), stream)):
            m = make_model(config)
            m.mem_write(BASE + 0x8000, img)
            put(m, 0, descriptor(Opcode.LOAD, dma={
                "dram_addr": BASE + 0x8000, "stride": len(img), "row_bytes": len(img),
                "rows": 1, "target": Target.WGT, "sram_addr": sram, "fmt": fmt.value}))
            put(m, 1, descriptor(Opcode.COMPLETE))
            start(m, 64, 2)
            assert status(m) == (0, ErrorCode.NONE)
            spads.append(bytes(m.spu_mem[0][0][Target.WGT]))
            if fmt == LoadFormat.RAW:
                assert spads[0][sram * 2 * C:sram * 2 * C + len(img)] == img
        lo, hi = sram * 2 * C, sram * 2 * C + len(raw)
        assert spads[1][lo:hi] == raw, (k, s)
        # beyond the tiles: only the padding's whole words, zero values
        tail = np.frombuffer(spads[1][hi:(sram + words) * 2 * C], np.uint8).reshape(-1, C, 2)
        assert not tail[:, :, 0].any()
        assert not any(spads[1][(sram + words) * 2 * C:])


# -- the model's GEMM: every stored weight entry is a MAC ----------------------------------------

@pytest.mark.parametrize("config", ["tiny", "fpga"])
@pytest.mark.parametrize("s", [1, 2, 8, 32])
def test_gemm_sums_every_stored_entry(config, s, rng):
    """A GEMM block on hand-written scratchpads (random activations, weight words with random
    indices, repeats within a bank included, as the tensor core takes them): each output is
    the bias plus the product of every stored entry (value, index) with the activation byte
    it indexes (at s = 1 the entry's position is its index), summed, as a raw int32; the loop
    below is that definition, entry by entry."""
    import numpy as np

    from s4accel.hw.cmd.descriptors import Target
    cfg = load_config(config)
    R, C = cfg.rows, cfg.cols
    m = make_model(config)
    sram = m.spu_mem[0][0]
    nb, mt, nt, nnz = 3, 2, 2, 32 // s
    act = rng.integers(-128, 128, (mt * nb, R, 32)).astype(np.int8)
    vals = rng.integers(-128, 128, (nt, nb, nnz, C)).astype(np.int8)
    idx = rng.integers(0, 32, (nt, nb, nnz, C)).astype(np.uint8)
    bias = rng.integers(-2**20, 2**20, (nt, C)).astype(np.int32)
    np.frombuffer(sram[Target.ACT], np.int8)[:act.size] = act.ravel()
    w = np.stack([vals.view(np.uint8), idx | rng.integers(0, 8, idx.shape).astype(np.uint8) << 5],
                 axis=-1)                           # (the index is the low 5 bits of its byte)
    np.frombuffer(sram[Target.WGT], np.uint8)[:w.size] = w.ravel()
    par = np.zeros((nt, C, 8), np.uint8)
    par[:, :, 0:4] = bias.view(np.uint8).reshape(nt, C, 4)
    np.frombuffer(sram[Target.PAR], np.uint8)[:par.size] = par.ravel()
    put(m, 0, descriptor(Opcode.GEMM, gemm={
        "act_addr": 0, "wgt_addr": 0, "par_addr": 0, "out_addr": 0, "banks": nb,
        "m_tiles": mt, "n_tiles": nt, "log2s": s.bit_length() - 1, "mode": 0}))
    put(m, 1, descriptor(Opcode.COMPLETE))
    start(m, 64, 2)
    assert status(m) == (0, ErrorCode.NONE)
    out = np.frombuffer(m.spu_mem[0][1], np.int32)[:nt * mt * R * C].reshape(nt, mt, R, C)
    for j in range(nt):
        for i in range(mt):
            want = bias[j].astype(np.int64)[None].repeat(R, 0)
            for b in range(nb):
                for n in range(nnz):
                    k = np.full(C, n) if s == 1 else idx[j, b, n]
                    want += act[i * nb + b][:, k].astype(np.int64) * vals[j, b, n]
            assert np.array_equal(out[j, i], want), (j, i)
