"""Amaranth-simulator tests of the JPEG decoder's datapath blocks (hw/jpeg) against the golden
decoder s4accel.base.jpeg, bit for bit, on images Pillow encodes in the test.

The entropy decoder must emit exactly the golden decoder's quantized coefficients (DC
prediction applied) for grey, 4:4:4, 4:2:2 and 4:2:0 scans, with restart intervals and
optimized Huffman tables, under random input gaps and output back-pressure; corrupt streams
(a bad Huffman code, a truncated stream, a bad RST sequence) must end with its error output
within a cycle bound. The IDCT must equal `idct_islow` on every block of those images and on
random coefficient blocks. Randomized tests log their seed (S4_SEED replays one).
"""


import io

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from jpeg_images import encode, smooth_image
from PIL import Image

from s4accel.base.jpeg import ZIGZAG, JpegError, decode, idct_islow, parse, scan_blocks
from s4accel.hw.jpeg.entropy import (
    EntropyDecoder,
    EntropyError,
    huffman_table_image,
    scan_config,
)
from s4accel.hw.jpeg.idct import UNIT_LATENCY, Idct, qtable_image
from s4accel.sim.workloads.jpeg import scan_data, with_dht_symbols


def table_writes(tables):
    dc, ac = tables.scan_huffman[0]
    writes = []
    for slot, t in dc.items():
        writes += huffman_table_image(t, slot)
    for slot, t in ac.items():
        writes += huffman_table_image(t, 4 + slot)
    return writes


def qt_writes(tables):
    writes = []
    for ci, q in comp_qtables(tables).items():
        writes += qtable_image(q, ci)
    return writes


class Chain(Elaboratable):
    """Entropy decoder feeding the IDCT, as the decoder will connect them."""

    def __init__(self):
        self.ent = EntropyDecoder()
        self.idct = Idct()

    def elaborate(self, platform):
        m = Module()
        m.submodules.ent = self.ent
        m.submodules.idct = self.idct
        wiring.connect(m, producer=self.ent.o_coef, consumer=self.idct.i_coef)
        return m


def run_decoder(data, tables, *, rng=None, gap=0.0, stall=0.0, idct=False, bound=None,
                mutate=None, hold=0):
    """Run one scan through the entropy decoder (and the IDCT with ``idct``).

    ``gap`` / ``stall``: probability of an idle input cycle / of output ready low; ``hold``:
    cycles of output ready low from the entropy decoder's done or error on. Returns
    (outputs, error, cycles from start to done or error); outputs are coefficient items as
    (comp, slot, k, value, last), or with ``idct`` rows as (comp, slot, row, pixels)."""
    rng = rng or np.random.default_rng(0)
    dut = Chain() if idct else EntropyDecoder()
    ent = dut.ent if idct else dut
    out_port = dut.idct.o_row if idct else ent.o_coef
    payload = scan_data(data)
    bound = bound or 200 + 40 * len(payload)
    outs = []
    result = {}
    state = {"started": False, "finished": False, "hold": 0}

    async def feed(ctx):
        while not state["started"]:
            await ctx.tick()
        for i, b in enumerate(payload):
            while rng.random() < gap:
                ctx.set(ent.i_data.valid, 0)
                await ctx.tick()
            ctx.set(ent.i_data.valid, 1)
            ctx.set(ent.i_data.payload, {"data": b, "last": i == len(payload) - 1})
            while not (await ctx.tick().sample(ent.i_data.ready))[2]:
                pass
        ctx.set(ent.i_data.valid, 0)

    async def collect(ctx):
        while True:
            ready = rng.random() >= stall
            if state["hold"]:
                state["hold"] -= 1
                ready = False
            ctx.set(out_port.ready, ready)
            _, _, valid, p = await ctx.tick().sample(out_port.valid, out_port.payload)
            if ready and valid:
                if idct:
                    outs.append((p.comp, p.slot, p.row, [int(x) for x in p.pixels]))
                else:
                    outs.append((p.comp, p.slot, p.k, p.value, p.last))

    async def main(ctx):
        for t, a, v in table_writes(tables):
            ctx.set(ent.i_table.valid, 1)
            ctx.set(ent.i_table.payload, {"table": t, "addr": a, "data": v})
            await ctx.tick()
        ctx.set(ent.i_table.valid, 0)
        if idct:
            for c, k, v in qt_writes(tables):
                ctx.set(dut.idct.i_qt.valid, 1)
                ctx.set(dut.idct.i_qt.payload, {"comp": c, "k": k, "data": v})
                await ctx.tick()
            ctx.set(dut.idct.i_qt.valid, 0)
        ctx.set(ent.config, scan_config(tables))
        ctx.set(ent.start, 1)
        await ctx.tick()
        ctx.set(ent.start, 0)
        state["started"] = True
        cycles = 1
        while not (ctx.get(ent.done) or ctx.get(ent.error) != EntropyError.NONE):
            await ctx.tick()
            cycles += 1
            assert cycles <= bound, f"no done or error within {bound} cycles"
        result["cycles"] = cycles
        state["hold"] = hold
        result["error"] = ctx.get(ent.error)
        # Let the pipeline behind the decoder drain: stop once no valid has been seen for
        # `quiet` cycles. Valid-low alone does not mean empty: a block can sit in the IDCT's
        # buffer or column pass (8 cycles with o_row.valid low) after the entropy decoder is
        # done, and under stalls up to three blocks are still inside, which a fixed wait missed.
        quiet = 32 if idct else 4
        idle = 0
        for _ in range(int(bound)):
            busy = ctx.get(out_port.valid) or (idct and ctx.get(dut.idct.i_coef.valid))
            idle = 0 if busy else idle + 1
            if idle > quiet:
                break
            await ctx.tick()
        else:
            raise AssertionError(f"outputs still coming {bound} cycles after done or error")

    if mutate:
        mutate(dut)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(collect, background=True)
    sim.run()
    return outs, result["error"], result["cycles"]


def items_to_blocks(items):
    """Coefficient items -> [(comp, slot, 64 natural-order coefficients)]."""
    blocks = []
    cur = np.zeros(64, dtype=np.int64)
    for comp, slot, k, value, last in items:
        cur[ZIGZAG[k]] = value
        if last:
            blocks.append((comp, slot, cur))
            cur = np.zeros(64, dtype=np.int64)
    return blocks


def expected_blocks(tables):
    cfg = scan_config(tables)
    golden = scan_blocks(tables)
    return [(ci, i % cfg["blocks"], b) for i, (ci, b) in enumerate(golden)]


def check_blocks(got, want):
    assert len(got) == len(want), f"{len(got)} blocks, expected {len(want)}"
    for i, ((c, s, b), (wc, ws, wb)) in enumerate(zip(got, want, strict=True)):
        assert (c, s) == (wc, ws), f"block {i}: comp/slot {(c, s)}, expected {(wc, ws)}"
        assert np.array_equal(b, wb), f"block {i} differs: {b} vs {wb}"


# ----------------------------------------------------------------------------- entropy decoder

CASES = [
    # (mode, height, width, encoder options)
    ("grey", 13, 21, {"quality": 75}),
    ("4:4:4", 9, 17, {"quality": 90}),
    ("4:2:2", 17, 23, {"quality": 50}),
    ("4:2:0", 19, 35, {"quality": 75}),
    ("4:2:0", 33, 20, {"quality": 95, "optimize": True}),
    ("4:2:2", 24, 40, {"quality": 30, "restart_marker_blocks": 2}),
    ("grey", 30, 31, {"quality": 100, "restart_marker_rows": 1}),
]


@pytest.mark.parametrize("mode,h,w,kw", CASES,
                         ids=[f"{c[0]}-{c[1]}x{c[2]}-{'-'.join(c[3])}" for c in CASES])
def test_entropy_exact(mode, h, w, kw, seed):
    """Coefficients equal the golden decoder's, with random input gaps and output stalls."""
    rng = np.random.default_rng(seed)
    data = encode(smooth_image(rng, h, w), mode, **kw)
    tables = parse(data)
    if "restart_marker_blocks" in kw or "restart_marker_rows" in kw:
        assert tables.scans[0].restart_interval and len(tables.scans[0].segments) > 1
    items, error, _ = run_decoder(data, tables, rng=rng, gap=0.2, stall=0.2)
    assert error == EntropyError.NONE
    check_blocks(items_to_blocks(items), expected_blocks(tables))


def test_entropy_throughput():
    """One symbol every three cycles (MATCH, SYMBOL, SHIFT) when bytes keep up: cycles per
    symbol on a 4:2:0 image at quality 75 (about 6 bits a symbol) and at quality 95 (more
    bits a symbol; a byte joins in two of the three cycles)."""
    rng = np.random.default_rng(7)
    img = smooth_image(rng, 48, 64)
    for q, limit in ((75, 3.05), (95, 3.3)):
        data = encode(img, "4:2:0", quality=q)
        tables = parse(data)
        items, error, cycles = run_decoder(data, tables)
        assert error == EntropyError.NONE
        check_blocks(items_to_blocks(items), expected_blocks(tables))
        nbytes = sum(len(s) for s in tables.scans[0].segments)
        print(f"4:2:0 q{q}: {len(items)} symbols, {nbytes} bytes, {cycles} cycles, "
              f"{cycles / len(items):.3f} cycles/symbol, {8 * nbytes / len(items):.2f} bits/symbol")
        assert cycles / len(items) <= limit


def corrupt_cases():
    """name -> (corrupt file, the intact file whose headers it keeps, expected error)."""
    rng = np.random.default_rng(3)
    img = smooth_image(rng, 16, 24)
    base = encode(img, "4:2:0", quality=75)
    rst = encode(img, "4:2:0", quality=75, restart_marker_blocks=1)
    sos = len(base) - len(scan_data(base))
    sos_r = len(rst) - len(scan_data(rst))
    i = rst.index(b"\xff\xd0", sos_r)
    return {
        # 32 one bits: no code of any table (an all-ones code is never assigned)
        "bad-code": (base[:sos + 5] + b"\xff\x00" * 4 + base[sos + 5:], base,
                     EntropyError.BAD_CODE),
        # the data stops mid-scan: at EOI, or with no marker at all (the input's last byte)
        "truncated-eoi": (base[:sos + 20] + b"\xff\xd9", base, EntropyError.TRUNCATED),
        "truncated-no-marker": (base[:sos + 20], base, EntropyError.TRUNCATED),
        # RST1 where RST0 is due; EOI where it is due
        "rst-sequence": (rst[:i] + b"\xff\xd1" + rst[i + 2:], rst, EntropyError.BAD_RST),
        "missing-rst": (rst[:i] + b"\xff\xd9", rst, EntropyError.MISSING_RST),
    }


@pytest.mark.parametrize("name", list(corrupt_cases()))
def test_entropy_corrupt_stream_errors(name):
    """Corrupt data ends with the error output, within 200 + 40 cycles per input byte, where
    the golden decoder raises too."""
    data, intact, want = corrupt_cases()[name]
    with pytest.raises(JpegError):
        decode(data)
    _, error, cycles = run_decoder(data, parse(intact))
    print(f"{name}: {error} after {cycles} cycles")
    assert error == want


@pytest.mark.parametrize("tc,sym,want,ks", [
    (0, 12, EntropyError.BAD_DC, []),                # the first symbol: DC size 12
    (1, 0xF1, EntropyError.BAD_RUN, [0, 16, 32, 48]),  # runs of 15: the fourth is past 63
], ids=["bad-dc", "bad-run"])
def test_entropy_bad_symbol_emits_no_item(tc, sym, want, ks):
    """A symbol that fails its checks ends the scan with its error and emits no item: the
    items before it come out (their zig-zag indices ``ks``), and nothing for it. (A symbol's
    loads do not wait on its checks: only the item's valid does.)"""
    rng = np.random.default_rng(3)
    data = with_dht_symbols(encode(smooth_image(rng, 16, 24), "grey", quality=75), tc, 0,
                            sym)
    with pytest.raises(JpegError):
        decode(data)
    items, error, _ = run_decoder(data, parse(data))
    assert error == want
    assert [k for _, _, k, _, _ in items] == ks, items


def zrl_at_48_jpeg() -> bytes:
    """A hand-built baseline JPEG, grey 8 x 16 (two blocks), whose first block ends with a
    ZRL at k = 48 (16 zeros up to k = 63: the block is complete, as libjpeg reads it; no
    encoder writes it, an EOB being shorter). DC table: size 0 -> '0'. AC table: 0xE1
    (run 14, size 1) -> '0', ZRL -> '10', EOB -> '110'. Block 1: DC '0', 0xE1 '0' + extra
    bit '1' (+1 at k = 15), ZRL x 3 (k 16 -> 32 -> 48 -> 64); block 2: DC '0', EOB."""
    def seg(marker, body):
        return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body
    def dht(tc_th, counts, syms):
        return bytes([tc_th]) + bytes(counts + [0] * (16 - len(counts))) + bytes(syms)
    bits = "0" + "0" + "1" + "10" * 3 + "0" + "110"
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert 0xFF not in scan
    return (b"\xff\xd8" + seg(0xDB, bytes([0]) + bytes([1] * 64))
            + seg(0xC0, bytes([8, 0, 8, 0, 16, 1, 1, 0x11, 0]))
            + seg(0xC4, dht(0x00, [1], [0x00]) + dht(0x10, [1, 1, 1], [0xE1, 0xF0, 0x00]))
            + seg(0xDA, bytes([1, 1, 0x00, 0, 63, 0])) + scan + b"\xff\xd9")


def test_entropy_zrl_ends_block_at_48():
    """A ZRL at k = 48 ends its block (k reaches 64): the next symbol is the next block's
    DC. The file is checked against Pillow (libjpeg) through the golden decoder first."""
    data = zrl_at_48_jpeg()
    want = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    assert np.array_equal(decode(data), want)
    tables = parse(data)
    items, error, _ = run_decoder(data, tables)
    assert error == EntropyError.NONE
    blocks = items_to_blocks(items)
    check_blocks(blocks, expected_blocks(tables))
    assert len(blocks) == 2 and blocks[0][2][ZIGZAG[15]] == 1


# ----------------------------------------------------------------------------- IDCT

CHAIN_CASES = [pytest.param(*c, id=f"{c[0]}-{c[1]}x{c[2]}",
                             marks=() if c[0] == "4:2:0" else pytest.mark.slow)
               for c in CASES[:4] + CASES[5:6]]


@pytest.mark.parametrize("mode,h,w,kw", CHAIN_CASES)
def test_chain_idct_exact(mode, h, w, kw, seed):
    """Entropy decoder into the IDCT: every 8x8 block equals idct_islow of the golden
    coefficients (before upsampling and colour conversion)."""
    rng = np.random.default_rng(seed)
    data = encode(smooth_image(rng, h, w), mode, **kw)
    tables = parse(data)
    rows, error, _ = run_decoder(data, tables, rng=rng, gap=0.1, stall=0.3, idct=True)
    assert error == EntropyError.NONE
    check_rows(rows, comp_qtables(tables), expected_blocks(tables))


def test_chain_idct_drains_after_done(seed):
    """Every block comes out when the IDCT still holds several at the entropy decoder's done
    (stalls make the IDCT the bottleneck, then the output is held off for 40 cycles): the
    column pass of the last one keeps o_row.valid low for 8 cycles after the previous one's
    rows, which must not end the run."""
    rng = np.random.default_rng(seed)
    data = encode(smooth_image(rng, 13, 21), "grey", quality=75)
    tables = parse(data)
    rows, error, _ = run_decoder(data, tables, rng=rng, stall=0.7, idct=True, hold=40)
    assert error == EntropyError.NONE
    check_rows(rows, comp_qtables(tables), expected_blocks(tables))


def comp_qtables(tables):
    return {ci: tables.scan_qtables[0][c.tq] for ci, c in enumerate(tables.components)}


def check_rows(rows, qtables, blocks):
    """IDCT rows equal idct_islow of `blocks` [(comp, slot, coefficients)], `qtables` by comp."""
    assert len(rows) == 8 * len(blocks), f"{len(rows)} rows, expected {8 * len(blocks)}"
    for i, (ci, slot, coef) in enumerate(blocks):
        want = idct_islow(coef, qtables[ci])
        got = rows[8 * i:8 * i + 8]
        assert [(r[0], r[1], r[2]) for r in got] == [(ci, slot, r) for r in range(8)]
        assert np.array_equal(np.array([r[3] for r in got]), want), f"block {i}"


def run_idct(blocks, qtables, *, rng, stall=0.0):
    """Blocks [(comp, slot, 64 natural-order coefficients)] through the IDCT alone, each as
    its nonzero coefficients in a random order (the last item a zero at k = 63 when that one is
    zero). Returns (rows, cycle of each block's last row)."""
    dut = Idct()
    rows, ends = [], []

    async def main(ctx):
        for comp, q in qtables.items():
            for c, k, v in qtable_image(q, comp):
                ctx.set(dut.i_qt.valid, 1)
                ctx.set(dut.i_qt.payload, {"comp": c, "k": k, "data": v})
                await ctx.tick()
        ctx.set(dut.i_qt.valid, 0)
        for comp, slot, coef in blocks:
            zz = coef[ZIGZAG]
            ks = [k for k in range(63) if zz[k]]
            rng.shuffle(ks)
            ks.append(63)
            for i, k in enumerate(ks):
                ctx.set(dut.i_coef.valid, 1)
                ctx.set(dut.i_coef.payload, {"comp": comp, "slot": slot, "k": k,
                                             "value": int(zz[k]), "last": i == len(ks) - 1})
                while not (await ctx.tick().sample(dut.i_coef.ready))[2]:
                    pass
        ctx.set(dut.i_coef.valid, 0)
        for _ in range(40 + 20 * len(blocks)):
            if len(rows) == 8 * len(blocks):
                break
            await ctx.tick()

    async def collect(ctx):
        cycle = 0
        while True:
            ready = rng.random() >= stall
            ctx.set(dut.o_row.ready, ready)
            _, _, valid, p = await ctx.tick().sample(dut.o_row.valid, dut.o_row.payload)
            cycle += 1
            if ready and valid:
                rows.append((p.comp, p.slot, p.row, [int(x) for x in p.pixels]))
                if p.last:
                    ends.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(collect, background=True)
    sim.run()
    return rows, ends


def dct_blocks(rng, n, qtable):
    """`n` realistic quantized blocks: the forward DCT (T.81 A.3.3) of random 8x8 pixel blocks,
    from flat to noisy, divided by `qtable` (natural order) and rounded."""
    x = np.arange(8)
    basis = np.cos((2 * x[None, :] + 1) * x[:, None] * np.pi / 16)
    basis[0] /= np.sqrt(2)
    out = []
    for _ in range(n):
        level = rng.integers(32, 224)
        noise = rng.integers(0, 64)
        px = np.clip(level + rng.integers(-noise, noise + 1, (8, 8)), 0, 255) - 128
        f = basis @ px @ basis.T / 4
        out.append(np.round(f.reshape(64) / qtable).astype(np.int64))
    return out


def test_idct_random_blocks(seed):
    """Realistic blocks (the quantized DCT of random pixel blocks, coarse and fine quantizers)
    and blocks at the extremes of 16-bit coefficients and quantizers equal idct_islow (the
    datapath keeps full width); blocks' items arrive in random order."""
    rng = np.random.default_rng(seed)
    qtables = {0: rng.integers(1, 8, 64), 1: rng.integers(1, 100, 64),
               2: rng.integers(1, 65536, 64)}
    blocks = []
    for i, coef in enumerate(dct_blocks(rng, 8, qtables[0]) + dct_blocks(rng, 8, qtables[1])):
        blocks.append((i // 8, i % 10, coef))
    for i in range(4):
        coef = np.zeros(64, dtype=np.int64)
        n = int(rng.integers(1, 65))
        coef[rng.choice(64, n, replace=False)] = rng.integers(-32768, 32768, n)
        if i == 3:
            coef[:] = -32768
        blocks.append((2, i, coef))
    rows, _ = run_idct(blocks, qtables, rng=rng, stall=0.3)
    check_rows(rows, qtables, blocks)
    pixels = np.array([r[3] for r in rows[:8 * 16]])
    assert np.count_nonzero((pixels > 0) & (pixels < 255)) > 0.8 * pixels.size, "clamped"


def _pass_signs():
    """The sign of each input's coefficient in each output of the IDCT's 1-D pass (the
    unit's stages run on unit vectors): [output][input]."""
    from s4accel.hw.jpeg import idct
    signs = np.zeros((8, 8), dtype=np.int64)
    for k in range(8):
        s = {f"d{i}": int(i == k) for i in range(8)} | {"rnd": 0}
        for f in idct._STAGES:
            s = f(s)
        signs[:, k] = [np.sign(s[f"out{o}"]) for o in range(8)]
    return signs


def test_idct_extreme_blocks(seed):
    """Blocks that drive the 1-D unit's values to their bounds: 16-bit coefficients of
    magnitude 32767 and quantizers of 65535, signed so that every column's output ``o`` is
    at its largest and the columns' signs then make row output ``o2`` the largest too. The
    unit holds each value at the width its bound needs (``idct._bounds``), so these are the
    blocks a bit too few would get wrong."""
    rng = np.random.default_rng(seed)
    signs = _pass_signs()
    assert np.all(signs != 0)
    q = {0: np.full(64, 65535)}
    blocks = []
    for o, o2 in [(0, 0), (3, 4), (7, 7)] + [tuple(rng.integers(0, 8, 2)) for _ in range(3)]:
        for sgn in (1, -1):
            coef = sgn * 32767 * np.outer(signs[o], signs[o2])      # [row k][column c]
            blocks.append((0, 0, coef.reshape(64)))
    rows, _ = run_idct(blocks, q, rng=rng)
    check_rows(rows, q, blocks)


def test_idct_cycles_per_block():
    """Back to back blocks of one item each (DC only, as in flat areas): a block every
    16 + UNIT_LATENCY cycles (8 column-pass cycles, the wait for the last column's result, 8
    row cycles); dense blocks are bound by their 64 items."""
    rng = np.random.default_rng(5)
    q = {0: np.full(64, 3)}
    for n_items, want in ((1, 16 + UNIT_LATENCY), (64, 64)):
        blocks = []
        for _ in range(6):
            coef = np.zeros(64, dtype=np.int64)
            coef[ZIGZAG[:n_items]] = rng.integers(-50, 50, n_items) | 1
            blocks.append((0, 0, coef))
        rows, ends = run_idct(blocks, q, rng=rng)
        check_rows(rows, q, blocks)
        per_block = (ends[-1] - ends[1]) / (len(ends) - 2)
        print(f"{n_items} items per block: {per_block} cycles per block")
        assert per_block == want
