"""DECODE's engine (hw/jpeg/engine.py) on Amaranth's simulator: the table block and the
bitstream as bus words of two DMA transfers, ACT writes out (word ``act_addr + index``, row
memory ``lane``) equal to the functional model's; a refused block never asks for the
bitstream; a corrupt stream's transfer is taken to its last word."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from jpeg_images import encode, smooth_image

from s4accel.base import codec
from s4accel.base.jpeg import JpegError
from s4accel.hw.jpeg.engine import DecodeEngine


def _words(data: bytes, nb: int) -> list[int]:
    data = data + bytes(-len(data) % nb)
    return [int.from_bytes(data[i:i + nb], "little") for i in range(0, len(data), nb)]


def _drive(ctx, dut, rng, stall, bw, sw, kb, ks, asked):
    """One cycle's inputs: the block's word ``kb``, the bitstream's word ``ks`` once the
    bitstream was asked for (``block_ok`` seen), both and the output's ready stalling at
    random. Returns ``(asked, block word taken, bitstream word taken, the lane written or
    None)`` (read before the tick)."""
    ready = rng.random() >= stall
    ctx.set(dut.o_act.ready, ready)
    ctx.set(dut.i_block.valid, kb < len(bw))
    if kb < len(bw):
        ctx.set(dut.i_block.payload, {"data": bw[kb], "last": kb == len(bw) - 1})
    asked |= bool(ctx.get(dut.block_ok))
    give = asked and ks < len(sw) and rng.random() >= stall
    ctx.set(dut.i_bits.valid, give)
    if give:
        ctx.set(dut.i_bits.payload, {"data": sw[ks], "last": ks == len(sw) - 1})
    tb = kb < len(bw) and ctx.get(dut.i_block.ready)
    ts = give and ctx.get(dut.i_bits.ready)
    p = ctx.get(dut.o_act.payload)
    lane = (p.addr, p.row, p.data) if ctx.get(dut.o_act.valid) and ready else None
    return asked, bool(tb), bool(ts), lane


def run_engine(jobs, rng, bus_bits=64, stall=0.2):
    """jobs: (block, bits, crop, out_h, out_w, act_addr, lane) -> per job (writes, status,
    whether the bitstream was asked for)."""
    nb = bus_bits // 8
    dut = DecodeEngine(bus_bits=bus_bits, max_width=64, max_out_w=64)
    results = []

    async def main(ctx):
        for block, bits, crop, out_h, out_w, act_addr, lane in jobs:
            x, y, w, h = crop
            ctx.set(dut.config, {"geometry": {"crop_x": x, "crop_y": y, "crop_w": w,
                                              "crop_h": h, "out_w": out_w, "out_h": out_h},
                                 "act_addr": act_addr, "lane": lane, "bits_len": len(bits)})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            bw, sw = _words(block, nb), _words(bits, nb)
            kb = ks = 0
            writes, asked = [], False
            for _ in range(60 * (len(block) + len(bits)) + 20000):
                if ctx.get(dut.done) or ctx.get(dut.error):
                    break
                asked, tb, ts, lane = _drive(ctx, dut, rng, stall, bw, sw, kb, ks, asked)
                await ctx.tick()
                kb += tb
                ks += ts
                if lane:
                    writes.append(lane)
            else:
                raise AssertionError("no done or error")
            status = "error" if ctx.get(dut.error) else "done"
            if asked:     # the bitstream's transfer was taken to its end
                assert ks == len(sw), (ks, len(sw))
            assert kb == len(bw)
            ctx.set(dut.i_block.valid, 0)
            ctx.set(dut.i_bits.valid, 0)
            results.append((writes, status, asked))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.run()
    return results


@pytest.mark.parametrize("bus_bits", [64, 128])
def test_engine_equals_model(bus_bits, rng):
    data = encode(smooth_image(rng, 16, 24), "4:2:2", quality=70)
    tables, bits = codec.split_scan(data)
    bits = bits + bytes(int(rng.integers(0, 5)))        # bytes after EOI are dropped
    block = codec.table_block(tables, codec.Norm(1800, 9, 5))
    crop, oh, ow = (3, 2, 20, 13), 6, 9
    exp = np.frombuffer(codec.act_lane_image(codec.decode_job(
        block, bits, crop=crop, out_h=oh, out_w=ow)), np.uint8).reshape(-1, 32)
    bad_block = bytearray(block)
    bad_block[0] ^= 1
    bad_bits = bits[:len(bits) // 2]
    # an image wider than the engine's max_width (64): refused as the model refuses it
    wide_tables, wide_bits = codec.split_scan(encode(smooth_image(rng, 8, 65), "grey"))
    wide_block = codec.table_block(wide_tables)
    with pytest.raises(codec.BlockError, match="width 65 is over the decoder's 64"):
        codec.decode_job(wide_block, wide_bits, crop=(0, 0, 8, 8), out_h=8, out_w=8,
                         max_width=64)
    # optimized Huffman tables: every symbol is used, the last one of each table too (the
    # loader drops the slots after it a bus word at a time)
    opt_tables, opt_bits = codec.split_scan(encode(smooth_image(rng, 24, 20), "4:2:0",
                                                   quality=90, optimize=True))
    opt_block = codec.table_block(opt_tables)
    opt_exp = np.frombuffer(codec.act_lane_image(codec.decode_job(
        opt_block, opt_bits, crop=(0, 0, 20, 24), out_h=24, out_w=20)), np.uint8).reshape(-1, 32)
    jobs = [(block, bits, crop, oh, ow, 65530, 3),           # the address wraps mod 2**16
            (bytes(bad_block), bits, crop, oh, ow, 0, 0),
            (block, bad_bits, crop, oh, ow, 0, 0),
            (block, bits, crop, oh, ow, 100, 1),
            (wide_block, wide_bits, (0, 0, 8, 8), 8, 8, 0, 0),
            (opt_block, opt_bits, (0, 0, 20, 24), 24, 20, 0, 2)]
    res = run_engine(jobs, rng, bus_bits=bus_bits)
    for k, at, lane in ((0, 65530, 3), (3, 100, 1)):
        writes, status, asked = res[k]
        assert status == "done" and asked, k
        assert [a for a, _, _ in writes] == [(at + i) % 65536 for i in range(oh * ow)], k
        assert {r for _, r, _ in writes} == {lane}, k
        got = np.array([list(d.to_bytes(32, "little")) for _, _, d in writes], np.uint8)
        assert np.array_equal(got, exp), k
    assert res[1][1] == "error" and not res[1][2] and not res[1][0]   # no bitstream asked for
    assert res[2][1] == "error" and res[2][2]
    assert res[4][1] == "error" and not res[4][2] and not res[4][0]
    writes, status, _ = res[5]
    assert status == "done"
    got = np.array([list(d.to_bytes(32, "little")) for _, _, d in writes], np.uint8)
    assert np.array_equal(got, opt_exp)


@pytest.mark.parametrize("bus_bits", [64, 128])
def test_table_block_cycles_match_the_model(bus_bits, rng):
    """The table block's time (start to the decoder's go, the DMA never stalling) is the
    performance model's ``table_block_cycles`` plus one constant, for grey and colour blocks
    with standard and optimized Huffman tables: the loader takes a used byte a cycle and drops
    an unused run's words one a cycle."""
    from s4accel.sim.model.perf_model import table_block_cycles

    nb = bus_bits // 8
    blocks = []
    for mode, opt in (("grey", False), ("grey", True), ("4:2:0", False), ("4:4:4", True)):
        t, _ = codec.split_scan(encode(smooth_image(rng, 16, 16), mode, quality=80,
                                       optimize=opt))
        blocks.append(codec.table_block(t))
    # and a DC table of 16-bit codes only: its first symbol slot follows the last count at
    # once (the loader's skip decision, precomputed, must see that count)
    only16 = bytearray(blocks[0])
    at = codec.COMP0 + 128
    only16[at:at + 16 + 256] = bytes(15) + bytes([12]) + bytes(range(12)) + bytes(244)
    blocks.append(bytes(only16))
    measured = []
    for block in blocks:
        dut = DecodeEngine(bus_bits=bus_bits, max_width=64, max_out_w=64)

        async def main(ctx, dut=dut, block=block):
            ctx.set(dut.config, {"geometry": {"crop_x": 0, "crop_y": 0, "crop_w": 16,
                                              "crop_h": 16, "out_w": 16, "out_h": 16},
                                 "act_addr": 0, "lane": 0, "bits_len": 1})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            words, k, cycles = _words(block, nb), 0, 0
            while not ctx.get(dut.block_ok):
                ctx.set(dut.i_block.valid, k < len(words))
                if k < len(words):
                    ctx.set(dut.i_block.payload, {"data": words[k], "last": k == len(words) - 1})
                took = k < len(words) and ctx.get(dut.i_block.ready)
                await ctx.tick()
                k += bool(took)
                cycles += 1
                assert cycles < 3000
            measured.append(cycles)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(main)
        sim.run()
    model = [table_block_cycles(b, nb) for b in blocks]
    # (the constant: the start's register, the loader's done, the job's GO and block_ok)
    assert len({m - p for m, p in zip(measured, model)}) == 1, (measured, model)
    assert 0 <= measured[0] - model[0] <= 3, (measured, model)
    assert max(model) < codec.TABLE_BLOCK_BYTES * 3 // 5


@pytest.mark.parametrize("bus_bits", [64, 128])
def test_mutated_table_blocks_equal_model(bus_bits, rng):
    """Table blocks with one to three random bytes changed (Huffman counts, whose sums decide
    which symbol slots the loader drops a word at a time, quantizers, header, symbols) end
    as the functional model's job does: refused (``DECODE_ERROR``, no bitstream asked for) or
    a corrupt stream, or the same ACT writes."""
    data = encode(smooth_image(rng, 16, 16), "4:2:0", quality=int(rng.integers(40, 95)),
                  optimize=bool(rng.integers(0, 2)))
    tables, bits = codec.split_scan(data)
    good = codec.table_block(tables)
    regions = [(0, 64)] + [(codec.COMP0 + codec.COMP_BYTES * c + a, codec.COMP0
                            + codec.COMP_BYTES * c + b)
                           for c in range(3) for a, b in ((0, 128), (128, 144), (144, 176),
                                                          (400, 416), (416, 480))]
    jobs, expect = [], []
    for i in range(13):
        bad = bytearray(good)
        if i == 12:
            # and always one the loader must refuse (a random sample may hold none): three
            # DC codes of length 1 overflow the code space
            bad[codec.COMP0 + 128] = 3
        for _ in range(int(rng.integers(1, 4)) if i < 12 else 0):
            lo, hi = regions[int(rng.integers(len(regions)))]
            at = int(rng.integers(lo, hi))
            bad[at] = int(rng.integers(0, 256)) if rng.random() < 0.5 else max(0, bad[at] - 1)
        try:
            q = codec.decode_job(bytes(bad), bits, crop=(0, 0, 16, 16), out_h=16, out_w=16,
                                 max_width=64)
            expect.append(np.frombuffer(codec.act_lane_image(q), np.uint8).reshape(-1, 32))
        except JpegError:                        # a corrupt stream for these tables
            expect.append("corrupt")
        except ValueError:
            # BlockError, or (check_geometry) a crop outside a frame whose size was mutated:
            # refused before the bitstream, as the device does (docs/faults.md)
            expect.append("refused")
        jobs.append((bytes(bad), bits, (0, 0, 16, 16), 16, 16, 0, 0))
    res = run_engine(jobs, rng, bus_bits=bus_bits)
    for k, ((writes, status, asked), exp) in enumerate(zip(res, expect, strict=True)):
        if isinstance(exp, str):
            assert status == "error", (k, exp)
            assert asked == (exp == "corrupt"), (k, exp, asked)
        else:
            assert status == "done", k
            got = np.array([list(d.to_bytes(32, "little")) for _, _, d in writes], np.uint8)
            assert np.array_equal(got, exp), k
    assert expect[-1] == "refused"


@pytest.mark.parametrize("bus_bits", [64, 128])
def test_table_symbol_count_limit(bus_bits, rng):
    """A Huffman table whose code lengths fit (255 codes of 15 bits, then 1 or 2 of 16 bits)
    is refused when it has 257 symbols, as the functional model refuses it
    (``BlockError``), and loads with 256: the loader's count check, apart from its
    code-length check, at its edge and at the table's last count (no later count byte
    sees the sum)."""
    data = encode(smooth_image(rng, 16, 16), "grey", quality=75)
    tables, bits = codec.split_scan(data)
    good = codec.table_block(tables)
    jobs, expect = [], []
    for n16 in (2, 1):
        bad = bytearray(good)
        at = codec.COMP0 + 400                  # component 0's AC table: its 16 counts
        bad[at:at + 16] = bytes([0] * 14 + [255, n16])
        try:
            codec.parse_block(bytes(bad), max_width=64)
            expect.append("loads")
        except codec.BlockError:
            expect.append("refused")
        jobs.append((bytes(bad), bits, (0, 0, 16, 16), 16, 16, 0, 0))
    assert expect == ["refused", "loads"]
    res = run_engine(jobs, rng, bus_bits=bus_bits)
    # refused: an error before the bitstream; loaded: the bitstream asked for (this scan's
    # codes are not in the new table, so how it ends is the stream's business)
    assert [(status == "error" and not asked) for _, status, asked in res] == [True, False]


def run_stream(jobs, rng, bus_bits=64, stall=0.2):
    """Jobs back to back as the command processor runs consecutive DECODEs: the next job
    starts as soon as the engine has ``released`` the current one (its bitstream's last word
    taken), while that one's last lanes still go out (``back_busy``). Returns per job
    ``(writes, status, asked, verdict, first, last)``: cycles of its verdict (``block_ok``
    or ``error`` seen), its first and last write (None without), and the table block words
    taken while the job before still had lanes to write."""
    nb = bus_bits // 8
    dut = DecodeEngine(bus_bits=bus_bits, max_width=64, max_out_w=64)
    out = []
    overlap = [0]

    async def main(ctx):
        cyc = 0
        # the job whose lanes are going out (its index), if another one has started since
        tail = None
        res = [dict(writes=[], status=None, asked=False, verdict=None) for _ in jobs]
        for j, (block, bits, crop, out_h, out_w, act_addr, lane) in enumerate(jobs):
            x, y, w, h = crop
            ctx.set(dut.config, {"geometry": {"crop_x": x, "crop_y": y, "crop_w": w,
                                              "crop_h": h, "out_w": out_w, "out_h": out_h},
                                 "act_addr": act_addr, "lane": lane, "bits_len": len(bits)})
            ctx.set(dut.start, 1)
            ctx.set(dut.o_act.ready, 0)        # (no lane goes out unrecorded)
            await ctx.tick()
            cyc += 1
            ctx.set(dut.start, 0)
            bw, sw = _words(block, nb), _words(bits, nb)
            kb = ks = 0
            r = res[j]
            for _ in range(60 * (len(block) + len(bits)) + 20000):
                if tail is not None and not ctx.get(dut.back_busy):
                    tail = None
                if r["verdict"] is None and (ctx.get(dut.block_ok) or ctx.get(dut.error)):
                    r["verdict"] = cyc
                    # the job before wrote its last lane first
                    assert tail is None, (j, "verdict while the job before writes")
                if ctx.get(dut.done) or ctx.get(dut.error):
                    r["status"] = "error" if ctx.get(dut.error) else "done"
                    break
                if ctx.get(dut.released) and ctx.get(dut.back_busy) and j + 1 < len(jobs):
                    r["status"] = "released"
                    tail = j
                    break
                r["asked"], tb, ts, lane = _drive(ctx, dut, rng, stall, bw, sw, kb, ks,
                                                  r["asked"])
                await ctx.tick()
                kb += tb
                ks += ts
                overlap[0] += tb and tail is not None
                if lane:
                    # lanes come in job order: the tail's until its back end is empty
                    res[tail if tail is not None else j]["writes"].append(lane + (cyc,))
                cyc += 1
            else:
                raise AssertionError(f"job {j}: no done, error or release")
            if r["asked"]:
                assert ks == len(sw), (j, ks, len(sw))
            assert kb == len(bw), j
            ctx.set(dut.i_block.valid, 0)
            ctx.set(dut.i_bits.valid, 0)
            if r["status"] != "released":
                await ctx.tick()
                cyc += 1
        assert tail is None
        out.extend(res)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.run()
    return out, overlap[0]


@pytest.mark.parametrize("bus_bits", [64, 128])
def test_next_job_overlaps_the_last_lanes(bus_bits, rng):
    """Motion JPEG's overlap: each job starts once the one before has taken its bitstream,
    its table block loads while that one's last MCU row goes out, and the result is the
    functional model's job after job. A refused block found meanwhile is reported after the
    job before has written its last lane; the jobs after it run as before."""
    specs = [("4:2:0", 40, 24, 80), ("grey", 24, 32, 60), ("4:4:4", 16, 16, 90),
             ("4:2:2", 32, 24, 50)]
    jobs, expect = [], []
    for k, (mode, h, w, q) in enumerate(specs):
        tables, bits = codec.split_scan(encode(smooth_image(rng, h, w), mode, quality=q))
        block = codec.table_block(tables, codec.Norm(1600 + 100 * k, 7, 4))
        crop = (1, 2, w - 3, h - 5)
        oh, ow = (h - 5) // 2, (w - 3) // 2
        jobs.append((block, bits, crop, oh, ow, 1000 * k + 7, k))
        expect.append(np.frombuffer(codec.act_lane_image(codec.decode_job(
            block, bits, crop=crop, out_h=oh, out_w=ow)), np.uint8).reshape(-1, 32))
    bad = bytearray(jobs[0][0])
    bad[5] = 7                                                  # no such sampling code
    jobs.insert(2, (bytes(bad),) + jobs[0][1:6] + (9,))
    expect.insert(2, "refused")
    res, overlap = run_stream(jobs, rng, bus_bits=bus_bits)
    for k, (r, exp, job) in enumerate(zip(res, expect, jobs, strict=True)):
        if isinstance(exp, str):
            assert r["status"] == "error" and not r["asked"] and not r["writes"], k
            continue
        assert r["status"] in ("done", "released"), (k, r["status"])
        at, lane = job[5], job[6]
        assert [a for a, _, _, _ in r["writes"]] == [at + i for i in range(len(exp))], k
        assert {row for _, row, _, _ in r["writes"]} == {lane}, k
        got = np.array([list(d.to_bytes(32, "little")) for _, _, d, _ in r["writes"]], np.uint8)
        assert np.array_equal(got, exp), k
    # every job but the refused one and the last was released before its last lane
    assert [r["status"] for r in res] == ["released", "released", "error", "released", "done"]
    # the refused block's verdict came after the lanes of the job before it
    assert res[2]["verdict"] > res[1]["writes"][-1][3]
    # and the next jobs' table blocks were read while lanes of the job before went out
    assert overlap > 0, overlap
    print("block words read during the tail:", overlap)
