"""cocotb testbench of the CSR block (``hw/csr/block.py``) against the register map.

The host side is cocotbext-axi's ``AxiLiteMaster``; the datapath side is driven and watched
directly. A Python model of the register file (built from the same
``s4accel/base/regmap/regmap.yaml`` and configuration as the DUT) predicts every read, every
``reg2dp_*`` output and every w1p pulse.
Capability constants are also checked against the configuration itself, independently of the
register map's expressions.

Parameters come from the environment: ``S4_CONFIG`` (JSON configuration), ``S4_SEED`` (replay a
run), ``S4_CASES`` (operations per random-traffic test).
"""

from __future__ import annotations

import logging
from collections import Counter

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from ...base.config import Config
from ...hw.csr.block import CsrBlock
from .base import CLOCK_NS, cases_from_env, config_from_env, pauses, rng_from_env, start

#: cycle bound of one AXI-Lite transaction, even with heavy random pauses
OP_CYCLES = 2000


def _u(handle) -> int:
    """Unsigned value of a port (a one-bit port reads as a ``Logic``)."""
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


class CsrTB:
    """Owns the clock, reset, the AXI-Lite master, the datapath inputs and the model."""

    def __init__(self, dut, config: Config, rng):
        self.dut, self.config, self.rng = dut, config, rng
        block = CsrBlock(config)
        self.regmap = block.regmap
        self.ports = block.ports()
        self.axi = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "bus_"), dut.clk, dut.rst)
        for log in (self.axi.write_if.log, self.axi.read_if.log):
            log.setLevel(logging.WARNING)
        # model state: stored value of rw/w1c fields and the level of datapath inputs
        self.store = {(r.name, f.name): f.reset for r, f in self.regmap.fields()
                      if f.access in ("rw", "w1c")}
        self.inputs = {}
        for p in self.ports:
            if p.direction == "dp2reg":
                getattr(dut, p.name).value = 0
                if p.role == "value":
                    self.inputs[(p.register, p.field)] = 0
        self.pulse_ports = [p for p in self.ports if p.role == "pulse"]
        self.orders = Counter()  # how AW and W of each write arrived
        self.pulses_seen = Counter()
        self.pulses_expected = Counter()
        self.long_pulses = []
        self.checked = 0

    async def start(self):
        await start(self.dut)
        cocotb.start_soon(self._watch_pulses())
        cocotb.start_soon(self._watch_write_order())

    async def _watch_pulses(self):
        prev = {p.name: 0 for p in self.pulse_ports}
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            for p in self.pulse_ports:
                v = _u(getattr(self.dut, p.name))
                if v and prev[p.name]:
                    self.long_pulses.append(p.name)
                self.pulses_seen[p.name] += bin(v).count("1")
                prev[p.name] = v

    async def _watch_write_order(self):
        d = self.dut
        n_aw = n_w = 0
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            # valid and ready as they will be sampled at the next edge
            aw = _u(d.bus__awvalid) and _u(d.bus__awready)
            w = _u(d.bus__wvalid) and _u(d.bus__wready)
            if n_aw == n_w and (aw or w):
                self.orders["together" if aw and w else "aw_first" if aw else "w_first"] += 1
            n_aw += bool(aw)
            n_w += bool(w)

    async def commit_edge(self):
        """Wait until both AW and W of the next write have been accepted; returns right after
        the edge that registers its decoded select, so the write commits at the following
        edge (two edges after the one that accepted the later of AW and W)."""
        d = self.dut
        aw = w = False
        while not (aw and w):
            await RisingEdge(d.clk)
            await ReadOnly()
            aw = aw or bool(_u(d.bus__awvalid) and _u(d.bus__awready))
            w = w or bool(_u(d.bus__wvalid) and _u(d.bus__wready))
        await RisingEdge(d.clk)
        await RisingEdge(d.clk)

    def set_pauses(self, p):
        """Random idle cycles on AW, W and AR and random backpressure on B and R."""
        w, r = self.axi.write_if, self.axi.read_if
        for channel in (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel):
            if p:
                rng = np.random.default_rng(int(self.rng.integers(1 << 32)))
                channel.set_pause_generator(pauses(rng, p))
            else:
                channel.clear_pause_generator()

    # -- model --------------------------------------------------------------------------------
    def expected(self, reg) -> int:
        """What a read of register ``reg`` must return."""
        value = 0
        for f in reg.fields:
            key = (reg.name, f.name)
            if f.is_const:
                v = f.reset
            elif f.is_datapath:
                v = self.inputs[key]
            elif f.access == "w1p":
                v = 0
            else:
                v = self.store[key]
            value |= v << f.lsb
        return value

    def model_write(self, reg, data, strb=0xF):
        mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)
        for f in reg.fields:
            key = (reg.name, f.name)
            bits = f.get(data & mask)
            fmask = f.get(mask)
            if f.access == "rw":
                self.store[key] = (self.store[key] & ~fmask) | bits
            elif f.access == "w1c":
                self.store[key] &= ~bits
            elif f.access == "w1p":
                self.pulses_expected[f"reg2dp_{reg.name.lower()}_{f.name}"] += bin(bits).count("1")

    def set_input(self, reg_name, field_name, value):
        self.inputs[(reg_name, field_name)] = value
        getattr(self.dut, f"dp2reg_{reg_name.lower()}_{field_name}").value = value

    def randomize_inputs(self):
        for (reg, field) in self.inputs:
            width = self.regmap.register(reg).field(field).width
            self.set_input(reg, field, int(self.rng.integers(0, 1 << width)))

    # -- bus ----------------------------------------------------------------------------------
    async def read(self, addr):
        r = await with_timeout(self.axi.read(addr, 4), OP_CYCLES * CLOCK_NS, "ns")
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def write(self, addr, data: bytes):
        b = await with_timeout(self.axi.write(addr, data), OP_CYCLES * CLOCK_NS, "ns")
        return int(b.resp)

    async def check_read(self, reg, what=""):
        value, resp = await self.read(reg.offset)
        want = self.expected(reg)
        assert resp == AxiResp.OKAY, f"{what}read {reg.name}: resp {resp}, expected OKAY"
        assert value == want, (f"{what}read {reg.name} (0x{reg.offset:03x}): 0x{value:08x}, "
                               f"expected 0x{want:08x} {reg.decode(want)}")
        self.checked += 1
        return value

    async def write_reg(self, reg, value, what=""):
        resp = await self.write(reg.offset, value.to_bytes(4, "little"))
        assert resp == AxiResp.OKAY, f"{what}write {reg.name}: resp {resp}, expected OKAY"
        # a write reaches its register one cycle after its response
        await RisingEdge(self.dut.clk)
        self.model_write(reg, value)

    def check_outputs(self, what=""):
        """Every ``reg2dp_*`` value port equals the model."""
        for p in self.ports:
            if p.direction == "reg2dp" and p.role == "value":
                got = _u(getattr(self.dut, p.name))
                want = self.store[(p.register, p.field)]
                assert got == want, f"{what}{p.name} = 0x{got:x}, expected 0x{want:x}"
        self.checked += 1

    def check_pulses(self, what=""):
        assert not self.long_pulses, f"{what}pulses longer than one cycle on {self.long_pulses}"
        assert self.pulses_seen == self.pulses_expected, \
            f"{what}pulses seen {dict(self.pulses_seen)}, expected {dict(self.pulses_expected)}"

    def finish(self):
        """End of a test: every pulse accounted for, no transaction in flight, something
        checked."""
        self.check_pulses("at the end: ")
        assert self.axi.idle(), "the AXI-Lite master still has operations in flight"
        assert self.checked > 0, "the test checked nothing"

    def unmapped(self, count):
        """Word addresses with no register: the top of the space and random ones."""
        used = {r.offset for r in self.regmap.registers}
        top = (1 << self.regmap.addr_width) - 4
        free = [a for a in range(0, top + 4, 4) if a not in used]
        picks = {top} | {free[int(i)] for i in self.rng.integers(0, len(free), count)}
        gaps = [r.offset + 4 for r in self.regmap.registers if r.offset + 4 not in used]
        return sorted(picks | set(gaps[:8]) - used)


async def _started(dut, name):
    config = config_from_env()
    rng = rng_from_env(dut, name)
    tb = CsrTB(dut, config, rng)
    tb.randomize_inputs()
    await tb.start()
    return tb


@cocotb.test()
async def constants_and_reset_values(dut):
    """After reset every register reads its constant, reset or datapath value."""
    tb = await _started(dut, "constants_and_reset_values")
    tb.check_outputs("after reset: ")
    for reg in tb.regmap.registers:
        await tb.check_read(reg, "after reset: ")
    # the capability registers, derived from the configuration directly
    c = tb.config
    rm = tb.regmap
    ident, _ = await tb.read(rm.register("ID").offset)
    assert ident == 0x53344F50 and ident.to_bytes(4, "big") == b"S4OP", hex(ident)
    version = rm.register("VERSION").decode((await tb.read(rm.register("VERSION").offset))[0])
    assert version == {"major": 0, "minor": 7, "patch": 0}, version
    array = rm.register("CAP_ARRAY").decode((await tb.read(rm.register("CAP_ARRAY").offset))[0])
    assert array == {"spus": c.spus, "rows": c.rows, "cols": c.cols, "bank": c.bank}, array
    mask = (await tb.read(rm.register("CAP_SPARSITY").offset))[0]
    levels = tuple(1 << i for i in range(6) if mask >> i & 1)
    assert levels == c.sparsities, f"CAP_SPARSITY 0x{mask:x}: {levels} != {c.sparsities}"
    sram = rm.register("CAP_SRAM").decode((await tb.read(rm.register("CAP_SRAM").offset))[0])
    assert (1 << sram["act_kib_log2"], 1 << sram["wgt_kib_log2"], 1 << sram["out_kib_log2"]) \
        == (c.act_sram_kib, c.wgt_sram_kib, c.out_sram_kib), sram
    bus = rm.register("CAP_BUS").decode((await tb.read(rm.register("CAP_BUS").offset))[0])
    assert bus == {"dram_bus_bits": c.dram_bus_bits, "desc_bytes": 32}, bus
    for name, want in (("CAP_L2", {"kib": c.l2_kib}),
                       ("CAP_VEC", {"max_row": c.vec_max_row,
                                    "units_log2": c.vec_units.bit_length() - 1})):
        got = rm.register(name).decode((await tb.read(rm.register(name).offset))[0])
        assert got == want, f"{name}: {got} != {want}"
    assert _u(dut.irq) == 0
    tb.finish()


@cocotb.test()
async def rw_write_and_read_back(dut):
    """Random values into every writable register, then byte and half-word writes (wstrb)."""
    tb = await _started(dut, "rw_write_and_read_back")
    writable = [r for r in tb.regmap.registers if any(f.access == "rw" for f in r.fields)]
    for _ in range(2):
        for reg in writable:
            await tb.write_reg(reg, int(tb.rng.integers(0, 1 << 32)))
            tb.check_outputs(f"after writing {reg.name}: ")
        for reg in writable:
            await tb.check_read(reg)
    # writes to constants and datapath registers are ignored but answer OKAY
    for reg in tb.regmap.registers:
        if all(f.access == "ro" for f in reg.fields):
            await tb.write_reg(reg, int(tb.rng.integers(0, 1 << 32)))
            await tb.check_read(reg, "after a write to a read-only register: ")
    # partial writes: only the strobed bytes change
    for _ in range(24):
        reg = writable[int(tb.rng.integers(0, len(writable)))]
        length = int(tb.rng.choice([1, 2]))
        lane = int(tb.rng.integers(0, 5 - length)) if length == 1 else int(tb.rng.choice([0, 2]))
        data = bytes(int(b) for b in tb.rng.integers(0, 256, length))
        resp = await tb.write(reg.offset + lane, data)
        assert resp == AxiResp.OKAY
        strb = ((1 << length) - 1) << lane
        tb.model_write(reg, int.from_bytes(data, "little") << (8 * lane), strb)
        await tb.check_read(reg, f"after writing {data.hex()} at byte {lane}: ")
        tb.check_outputs(f"after a partial write of {reg.name}: ")
    tb.finish()


@cocotb.test()
async def w1p_pulses(dut):
    """Writing 1 to a w1p field gives exactly one one-cycle pulse; it always reads 0."""
    tb = await _started(dut, "w1p_pulses")
    assert tb.pulse_ports, "the register map has no w1p field"
    for p in tb.pulse_ports:
        reg = tb.regmap.register(p.register)
        field = reg.field(p.field)
        for i in range(6):
            value = int(tb.rng.integers(0, 1 << 32))
            value = field.put(value, (1 << field.width) - 1 if i % 2 == 0 else 0)
            await tb.write_reg(reg, value)
            for _ in range(3):
                await RisingEdge(dut.clk)
            tb.check_pulses(f"after writing 0x{value:08x} to {reg.name}: ")
            await tb.check_read(reg)
            tb.check_outputs()
        # a byte write without the field's byte strobed does not pulse
        lane = next(i for i in range(4) if not (field.mask >> (8 * i)) & 0xFF)
        await tb.write(reg.offset + lane, b"\xff")
        tb.model_write(reg, 0xFF << (8 * lane), 1 << lane)
        for _ in range(3):
            await RisingEdge(dut.clk)
        tb.check_pulses(f"after a byte write to lane {lane} of {reg.name}: ")
    assert sum(tb.pulses_seen.values()) > 0
    tb.finish()


async def _pulse(tb, reg, field, bits):
    port = getattr(tb.dut, f"dp2reg_{reg.lower()}_{field}_set")
    await RisingEdge(tb.dut.clk)
    port.value = bits
    await RisingEdge(tb.dut.clk)
    port.value = 0
    key = (reg, field)
    tb.store[key] |= bits
    await RisingEdge(tb.dut.clk)


@cocotb.test()
async def w1c_set_clear_and_irq(dut):
    """Datapath pulses set w1c bits, writing 1 clears them, set wins over clear; irq follows."""
    tb = await _started(dut, "w1c_set_clear_and_irq")
    rm = tb.regmap
    irq = rm.interrupt
    enable_reg = rm.register(irq.enable_register)
    w1c = [(r, f) for r, f in rm.fields() if f.access == "w1c"]
    assert w1c, "the register map has no w1c field"

    def irq_expected():
        pending = any(tb.store[(irq.status, f.name)] for f in rm.register(irq.status).fields)
        return int(bool(tb.store[(irq.enable_register, irq.enable_field)]) and pending)

    async def check_irq(what):
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert _u(dut.irq) == irq_expected(), f"{what}: irq {_u(dut.irq)}"
        await RisingEdge(dut.clk)

    for enable in (0, 1):
        await tb.write_reg(enable_reg, enable_reg.field(irq.enable_field).put(0, enable))
        for reg, field in w1c:
            bits = (1 << field.width) - 1
            await _pulse(tb, reg.name, field.name, bits)
            await tb.check_read(reg, f"after setting {reg.name}.{field.name}: ")
            tb.check_outputs()
            await check_irq(f"enable={enable}, {reg.name}.{field.name} set")
            await tb.write_reg(reg, 0)  # writing 0 changes nothing
            await tb.check_read(reg, f"after writing 0 to {reg.name}: ")
            await tb.write_reg(reg, field.put(0, bits))
            await tb.check_read(reg, f"after clearing {reg.name}.{field.name}: ")
            tb.check_outputs()
            await check_irq(f"enable={enable}, {reg.name}.{field.name} cleared")
    # a set pulse in the very cycle a write clears the bit: set wins, the bit stays
    reg, field = w1c[0]
    port = getattr(dut, f"dp2reg_{reg.name.lower()}_{field.name}_set")

    async def set_at_commit():
        await tb.commit_edge()
        port.value = 1
        await RisingEdge(dut.clk)
        port.value = 0

    for _ in range(3):
        setter = cocotb.start_soon(set_at_commit())
        await tb.write_reg(reg, 0xFFFFFFFF)
        await setter
        tb.store[(reg.name, field.name)] = 1
        await RisingEdge(dut.clk)
        await tb.check_read(reg, "after a set in the cycle of a clearing write: ")
        tb.check_outputs()
    tb.finish()


@cocotb.test()
async def datapath_inputs(dut):
    """ro registers driven by the datapath read what it drives."""
    tb = await _started(dut, "datapath_inputs")
    dp = [r for r in tb.regmap.registers if any(f.is_datapath for f in r.fields)]
    for round_ in range(4):
        tb.randomize_inputs()
        await RisingEdge(dut.clk)
        for reg in dp:
            await tb.check_read(reg, f"round {round_}: ")
    tb.finish()


@cocotb.test()
async def unmapped_addresses_decerr(dut):
    """Reads and writes where no register is answer DECERR; reads return 0, nothing changes."""
    tb = await _started(dut, "unmapped_addresses_decerr")
    for reg in tb.regmap.registers:
        if any(f.access == "rw" for f in reg.fields):
            await tb.write_reg(reg, int(tb.rng.integers(0, 1 << 32)))
    holes = tb.unmapped(24)
    for addr in holes:
        value, resp = await tb.read(addr)
        assert resp == AxiResp.DECERR and value == 0, \
            f"read 0x{addr:03x}: resp {resp} data 0x{value:x}, expected DECERR and 0"
        resp = await tb.write(addr, int(tb.rng.integers(0, 1 << 32)).to_bytes(4, "little"))
        assert resp == AxiResp.DECERR, f"write 0x{addr:03x}: resp {resp}, expected DECERR"
        tb.checked += 1
    for reg in tb.regmap.registers:
        await tb.check_read(reg, "after writes to unmapped addresses: ")
    tb.check_outputs()
    tb.finish()


@cocotb.test()
@cocotb.parametrize(pause=[0.3, 0.7])
async def random_traffic_with_pauses(dut, pause):
    """Concurrent random reads and writes with random pauses on all five channels, so AW and W
    arrive in every order; every response is checked against the model."""
    tb = await _started(dut, f"random_traffic_with_pauses(pause={pause})")
    tb.set_pauses(pause)
    cases = cases_from_env(40)
    rm = tb.regmap
    writable = [r for r in rm.registers
                if any(f.access in ("rw", "w1p") for f in r.fields)]
    stable = [r for r in rm.registers if all(f.access == "ro" for f in r.fields)]
    holes = tb.unmapped(16)
    issued = {"writes": 0, "reads": 0}
    done = {"writes": 0, "reads": 0}

    async def writer():
        for i in range(10 * cases):
            if i >= cases and len(tb.orders) == 3:
                break
            reg = writable[int(tb.rng.integers(0, len(writable)))]
            issued["writes"] += 1
            await tb.write_reg(reg, int(tb.rng.integers(0, 1 << 32)), "random traffic: ")
            await tb.check_read(reg, "random traffic, read back: ")
            tb.check_outputs("random traffic: ")
            done["writes"] += 1

    async def reader():
        for _ in range(cases):
            issued["reads"] += 1
            if tb.rng.random() < 0.25:
                addr = holes[int(tb.rng.integers(0, len(holes)))]
                value, resp = await tb.read(addr)
                assert resp == AxiResp.DECERR and value == 0, f"read 0x{addr:03x}"
            else:
                await tb.check_read(stable[int(tb.rng.integers(0, len(stable)))],
                                    "random traffic: ")
            done["reads"] += 1

    w = cocotb.start_soon(writer())
    r = cocotb.start_soon(reader())
    await w
    await r
    tb.set_pauses(0)
    for _ in range(3):
        await RisingEdge(dut.clk)
    assert issued == done and done["reads"] == cases and done["writes"] >= cases, (issued, done)
    assert set(tb.orders) == {"aw_first", "w_first", "together"}, \
        f"AW/W arrival orders seen: {dict(tb.orders)}"
    dut._log.info("writes by AW/W arrival order: %s", dict(tb.orders))
    tb.finish()
