"""The register map: committed artifacts equal what ``s4accel/base/regmap/regmap.yaml``
generates, validation messages, the CSR block on Amaranth's simulator, and its cocotb testbench
on Verilator and Icarus.

Regenerate the committed artifacts with ``s4 regmap --format py -o sw/regs.py`` and
``s4 regmap --format md -o docs/registers.md``.
"""

import copy
import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from amaranth.sim import Simulator

from s4accel.base import regmap
from s4accel.base.config import Config, load_config
from s4accel.base.regmap import RegisterMap, RegmapError, generate, load
from s4accel.hw.bus.axi import Resp
from s4accel.hw.csr import CsrBlock
from s4accel.sim.tb import runner

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = {"py": "sw/regs.py", "md": "docs/registers.md"}


# -- generated artifacts --------------------------------------------------------------------

@pytest.mark.parametrize("fmt,path", sorted(REGENERATE.items()))
def test_committed_artifact_is_generated(fmt, path):
    committed = (ROOT / path).read_text()
    assert committed == generate(fmt), (
        f"{path} differs from what s4accel/base/regmap/regmap.yaml generates; regenerate it with "
        f"s4 regmap --format {fmt} -o {path}")
    assert committed.splitlines()[0].endswith(
        "Generated from s4accel/base/regmap/regmap.yaml by s4accel.base.regmap; do not edit." +
        (" -->" if fmt == "md" else ""))


def test_regs_module_matches_map():
    """The driver's module carries every offset, field and reset of the map."""
    regs = importlib.import_module("s4accel.sw.regs")
    rm = load()
    assert regs.Register is regmap.Register and regs.Field is regmap.Field
    assert tuple(regs.REGISTERS.values()) == rm.registers
    assert set(regs.REGISTERS) == {r.name for r in rm}
    assert regs.INTERRUPT_STATUS == "IRQ" and regs.INTERRUPT_ENABLE == ("CTRL", "irq_en")
    for r in rm:
        assert getattr(regs, r.name) == r.offset == regs.REGISTERS[r.name].offset
        assert regs.BY_OFFSET[r.offset].name == r.name
        for f in r.fields:
            p = f"{r.name}_{f.name.upper()}"
            assert (getattr(regs, f"{p}_SHIFT"), getattr(regs, f"{p}_WIDTH"),
                    getattr(regs, f"{p}_MASK"), getattr(regs, f"{p}_ACCESS")) == \
                (f.lsb, f.width, f.mask, f.access)
            assert regs.REGISTERS[r.name].field(f.name) == f
            assert getattr(regs, f"{p}_RESET", None) == (f.reset if isinstance(f.reset, int)
                                                        else None)
    ctrl = regs.REGISTERS["CTRL"]
    assert ctrl.encode(enable=1, soft_reset=1) == 0b101
    assert ctrl.decode(0b110) == {"enable": 0, "irq_en": 1, "soft_reset": 1}
    assert regs.REGISTERS["CAP_ARRAY"].field("rows").reset == "{rows}"
    with pytest.raises(KeyError, match="register CTRL has no field 'nope'"):
        ctrl.encode(nope=1)


def test_required_contents():
    rm = load()
    names = [r.name for r in rm]
    for name in ("ID", "VERSION", "CAP_ARRAY", "CAP_SPARSITY", "CAP_SRAM", "CAP_BUS", "CTRL",
                 "STATUS", "IRQ", "ERR_ADDR", "RING_BASE", "RING_SIZE", "RING_HEAD",
                 "RING_TAIL", "WIN_CTRL", "WATCHDOG", "PERF_BUSY", "PERF_MAC", "PERF_STALL_IN",
                 "PERF_STALL_OUT", "PERF_DMA_RD_BYTES", "PERF_DMA_WR_BYTES", "PERF_DESC"):
        assert name in names
    for n in range(4):
        assert rm.register(f"WIN{n}_BASE").access == rm.register(f"WIN{n}_LIMIT").access == "rw"
    assert rm.register("ID").reset == 0x53344F50
    assert rm.register("CTRL").field("soft_reset").access == "w1p"
    assert {f.access for f in rm.register("IRQ").fields} == {"w1c"}
    assert not rm.is_resolved


@pytest.mark.parametrize("preset", ["tiny", "fpga", "antoum"])
def test_capabilities_resolve_from_config(preset):
    config = load_config(preset)
    rm = load().resolve_resets(config)
    assert rm.is_resolved
    array = rm.register("CAP_ARRAY")
    assert array.decode(array.reset) == {"spus": config.spus, "rows": config.rows,
                                         "cols": config.cols, "bank": 32}
    mask = rm.register("CAP_SPARSITY").reset
    assert tuple(1 << i for i in range(6) if mask >> i & 1) == config.sparsities
    sram = rm.register("CAP_SRAM").decode(rm.register("CAP_SRAM").reset)
    assert [1 << sram[k] for k in ("act_kib_log2", "wgt_kib_log2", "out_kib_log2")] == \
        [config.act_sram_kib, config.wgt_sram_kib, config.out_sram_kib]
    assert rm.register("CAP_BUS").decode(rm.register("CAP_BUS").reset) == \
        {"dram_bus_bits": config.dram_bus_bits, "desc_bytes": 32}
    assert load().resolve_resets(config.replace(sparsities=(1, 4))).register(
        "CAP_SPARSITY").reset == 0b101


def test_exported_artifacts_do_not_depend_on_config():
    for fmt in regmap.FORMATS:
        text = generate(fmt)
        assert "{rows}" in text, fmt
        assert generate(fmt, regmap=load()) == text
    resolved = generate("c", config="fpga")
    assert re.search(r"#define S4_CAP_ARRAY_ROWS_RESET +0x08u", resolved)
    assert "{rows}" not in resolved
    with pytest.raises(ValueError, match="format must be one of c, md, py, yaml, not 'h'"):
        generate("h")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_c_header_compiles_and_agrees(tmp_path):
    rm = load()
    (tmp_path / "s4_regs.h").write_text(generate("c"))
    asserts = []
    for r in rm:
        asserts.append(f"_Static_assert(S4_REG_{r.name} == {r.offset}u, \"{r.name}\");")
        for f in r.fields:
            p = f"S4_{r.name}_{f.name.upper()}"
            asserts.append(f"_Static_assert({p}_SHIFT == {f.lsb}u && {p}_WIDTH == {f.width}u "
                           f"&& {p}_MASK == {f.mask}u, \"{p}\");")
            if isinstance(f.reset, int):
                asserts.append(f"_Static_assert({p}_RESET == {f.reset}u, \"{p}\");")
    (tmp_path / "check.c").write_text(
        '#include "s4_regs.h"\n#include "s4_regs.h"\n' + "\n".join(asserts) + "\nint x;\n")
    result = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror",
                             "-fsyntax-only", "check.c"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_yaml_round_trip():
    rm = load()
    text = rm.to_yaml()
    again = RegisterMap.from_yaml(text)
    assert again == rm
    assert again.to_yaml().splitlines()[1:] == text.splitlines()[1:]
    assert yaml.safe_load(text)["registers"][0]["offset"] == 0
    # normalized: every register has an explicit offset and every field its access
    for reg in yaml.safe_load(text)["registers"]:
        assert "offset" in reg and all("access" in f for f in reg["fields"])


def test_markdown_has_a_table_per_register():
    text = generate("md")
    rm = load()
    for r in rm:
        assert f"\n### {r.name}\n" in text
    assert text.count("| Bits | Field | Access | Reset | Description |") == len(rm)
    assert "| `2` | `soft_reset` | w1p | 0 |" in text
    assert "| `31:3` | - | - | 0 | reserved |" in text


def test_render_and_check(tmp_path):
    """The function API of ``s4 regmap``: :func:`regmap.render` gives an artifact's text and
    :func:`regmap.check` says whether a file holds exactly that."""
    out = tmp_path / "regs.py"
    assert not regmap.check("py", out)
    out.write_text(regmap.render("py"))
    assert out.read_text() == generate("py")
    assert regmap.check("py", out)
    assert not regmap.check("py", out, config="fpga")
    out.write_text(out.read_text() + "# edited\n")
    assert not regmap.check("py", out)
    source = tmp_path / "map.yaml"
    source.write_text(load().to_yaml())
    assert regmap.render("c", config="fpga", path=source).splitlines()[1:] == \
        generate("c", config="fpga").splitlines()[1:]
    assert str(source) in regmap.render("c", path=source).splitlines()[0]


# -- validation -----------------------------------------------------------------------------

def _small():
    return {
        "name": "t",
        "registers": [
            {"name": "A", "offset": 0, "access": "rw",
             "fields": [{"name": "x", "bits": "3:0"}, {"name": "y", "bits": 4}]},
            {"name": "B", "access": "ro", "fields": [{"name": "v", "bits": "7:0", "reset": 5}]},
        ],
    }


def _mutate(path, value):
    d = _small()
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return d


@pytest.mark.parametrize("data,message", [
    (_mutate(["registers", 0, "fields", 1, "bits"], "5:3"),
     "register A: fields x [3:0] and y [5:3] overlap"),
    (_mutate(["registers", 0, "fields", 1, "bits"], "32:30"),
     "register A field y: bits 32:30 go beyond the 32-bit register"),
    (_mutate(["registers", 0, "fields", 1, "bits"], 420),
     "register A field y: bit 420 is beyond the 32-bit register (quote bit ranges"),
    (_mutate(["registers", 1, "name"], "A"), "duplicate register name A"),
    (_mutate(["registers", 1, "offset"], 0), "registers A and B share offset 0x000"),
    (_mutate(["registers", 1, "offset"], 6), "register B: offset 0x006 is not a multiple of 4"),
    (_mutate(["registers", 1, "offset"], 0x1000),
     "register B: offset 0x1000 is outside the 12-bit address space"),
    (_mutate(["registers", 0, "access"], "rx"),
     "register A field x: unknown access 'rx' (one of ro, rw, w1c, w1p)"),
    (_mutate(["registers", 1, "fields", 0, "reset"], 256),
     "register B field v: reset 0x100 does not fit in 8 bits"),
    (_mutate(["registers", 1, "fields", 0, "reset"], "{rowz}"),
     "register B field v: reset '{rowz}' names unknown configuration value 'rowz'"),
    (_mutate(["registers", 1, "fields", 0, "reset"], "rows"),
     "register B field v: reset 'rows' uses 'rows': write configuration values in braces"),
    (_mutate(["registers", 1, "fields", 0, "reset"], "__import__('os')"),
     "register B field v: reset \"__import__('os')\" calls something other than log2(x)"),
    (_mutate(["registers", 0, "fields", 1, "name"], "x"), "register A: duplicate field name x"),
    (_mutate(["registers", 0, "fields", 1, "name"], "Y"),
     "register A field Y: field names must be lower_case"),
    (_mutate(["registers", 1, "name"], "b"), "register b: register names must be UPPER_CASE"),
    (_mutate(["registers", 0, "fields", 1, "bits"], "3:5"),
     "register A field y: bits 3:5 have the msb below the lsb"),
    (_mutate(["registers", 0, "fields", 0, "colour"], 1),
     "register A field x: unknown key(s) 'colour'"),
    (_mutate(["registers", 0, "fields", 1, "reset"], 1), None),  # a valid variation
    (_mutate(["interrupt"], {"status": "A", "enable": "A.y"}),
     "interrupt status 'A' must be a register whose fields are all w1c"),
])
def test_validation_messages(data, message):
    if message is None:
        RegisterMap.from_dict(data)
        return
    with pytest.raises(RegmapError, match=re.escape(message)):
        RegisterMap.from_dict(data)


def test_port_name_clash():
    d = _small()
    d["registers"].append({"name": "A_X", "access": "rw", "fields": [{"name": "z", "bits": 0}]})
    d["registers"][0]["fields"][0]["name"] = "x_z"
    with pytest.raises(RegmapError, match="register A_X field z: its port reg2dp_a_x_z clashes "
                                          "with register A field x_z"):
        RegisterMap.from_dict(d)


def test_reset_must_fit_for_the_config():
    with pytest.raises(RegmapError, match=re.escape(
            "register CAP_ARRAY field rows: reset '{rows}' is 256 for configuration 'custom', "
            "which does not fit in 8 bits")):
        load().resolve_resets(Config(rows=256))


def test_unquoted_bit_range_in_yaml():
    text = yaml.safe_dump(_small()).replace("'3:0'", "3:0")
    with pytest.raises(RegmapError, match="base-60"):
        RegisterMap.from_yaml(text)


def test_map_is_frozen():
    rm = load()
    with pytest.raises(AttributeError):
        rm.name = "x"
    with pytest.raises(AttributeError):
        rm.register("CTRL").fields[0].lsb = 3


# -- the CSR block on Amaranth's simulator --------------------------------------------------

def test_csr_block_ports():
    block = CsrBlock(load_config("tiny"))
    names = {p.name for p in block.ports()}
    assert {"reg2dp_ctrl_enable", "reg2dp_ctrl_soft_reset", "dp2reg_status_err_code",
            "dp2reg_irq_done_set", "reg2dp_irq_done", "reg2dp_win_ctrl_en",
            "dp2reg_perf_desc_count"} <= names
    assert not any("cap_" in n or "_id_" in n for n in names)
    assert block.field_port("CTRL", "enable") is block.reg2dp_ctrl_enable
    assert block.field_port("status", "err_code") is block.dp2reg_status_err_code
    assert block.field_set_port("IRQ", "error") is block.dp2reg_irq_error_set
    assert len(block.dp2reg_status_err_code) == 8
    with pytest.raises(ValueError, match="register ID field value is a constant"):
        block.field_port("ID", "value")
    with pytest.raises(ValueError, match="register CTRL field enable is not w1c"):
        block.field_set_port("CTRL", "enable")
    with pytest.raises(KeyError, match="register CTRL has no field 'nope'"):
        block.field_port("CTRL", "nope")
    with pytest.raises(TypeError, match="config must be a Config"):
        CsrBlock("tiny")


async def _write(ctx, bus, addr, data, *, strb=0xF, aw_delay=0, w_delay=0):
    done = {"aw": False, "w": False}
    ctx.set(bus.bready, 0)
    for cycle in range(40):
        aw_on = not done["aw"] and cycle >= aw_delay
        w_on = not done["w"] and cycle >= w_delay
        ctx.set(bus.awvalid, aw_on)
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wvalid, w_on)
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strb)
        hs = {"aw": aw_on and ctx.get(bus.awready), "w": w_on and ctx.get(bus.wready)}
        await ctx.tick()
        done = {k: done[k] or hs[k] for k in done}
        if all(done.values()):
            break
    assert all(done.values()), done
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    ctx.set(bus.bready, 1)
    for _ in range(10):
        if ctx.get(bus.bvalid):
            resp = ctx.get(bus.bresp)
            await ctx.tick()
            ctx.set(bus.bready, 0)
            return resp
        await ctx.tick()
    raise AssertionError("no write response")


async def _read(ctx, bus, addr):
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    for _ in range(10):
        if ctx.get(bus.arready):
            await ctx.tick()
            break
        await ctx.tick()
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    for _ in range(10):
        if ctx.get(bus.rvalid):
            data, resp = ctx.get(bus.rdata), ctx.get(bus.rresp)
            await ctx.tick()
            ctx.set(bus.rready, 0)
            return data, resp
        await ctx.tick()
    raise AssertionError("no read response")


def test_csr_block_amaranth_sim(seed):
    """AW before W, W before AW and both together; wstrb; w1p and w1c; DECERR."""
    import numpy as np

    rng = np.random.default_rng(seed)
    config = load_config("tiny")
    dut = CsrBlock(config)
    rm = dut.regmap
    pulses = []

    async def watch(ctx):
        async for _, _, pulse in ctx.tick().sample(dut.reg2dp_ctrl_soft_reset):
            pulses.append(pulse)

    async def bench(ctx):
        bus = dut.bus
        data, resp = await _read(ctx, bus, rm.register("ID").offset)
        assert (data, resp) == (0x53344F50, Resp.OKAY)
        data, _ = await _read(ctx, bus, rm.register("CAP_ARRAY").offset)
        assert rm.register("CAP_ARRAY").decode(data)["cols"] == config.cols
        base = rm.register("RING_BASE").offset
        for aw_delay, w_delay in ((0, 0), (0, 3), (3, 0), (1, 1)):
            value = int(rng.integers(0, 1 << 32))
            assert await _write(ctx, bus, base, value, aw_delay=aw_delay,
                                w_delay=w_delay) == Resp.OKAY
            assert await _read(ctx, bus, base) == (value, Resp.OKAY)
            assert ctx.get(dut.reg2dp_ring_base_addr) == value
        assert await _write(ctx, bus, base, 0xAABBCCDD, strb=0b0100) == Resp.OKAY
        assert (await _read(ctx, bus, base))[0] == (value & ~0xFF0000) | 0xBB0000
        # w1p: one pulse, reads 0, leaves the rw bits as written
        ctrl = rm.register("CTRL")
        assert await _write(ctx, bus, ctrl.offset, 0b111) == Resp.OKAY
        assert (await _read(ctx, bus, ctrl.offset))[0] == 0b011
        assert ctx.get(dut.irq) == 0
        # w1c
        irq = rm.register("IRQ")
        ctx.set(dut.dp2reg_irq_error_set, 1)
        await ctx.tick()
        ctx.set(dut.dp2reg_irq_error_set, 0)
        assert ctx.get(dut.reg2dp_irq_error) == 1 and ctx.get(dut.irq) == 1
        assert (await _read(ctx, bus, irq.offset))[0] == 0b10
        assert await _write(ctx, bus, irq.offset, 0b01) == Resp.OKAY
        assert (await _read(ctx, bus, irq.offset))[0] == 0b10
        assert await _write(ctx, bus, irq.offset, 0b10) == Resp.OKAY
        assert (await _read(ctx, bus, irq.offset))[0] == 0 and ctx.get(dut.irq) == 0
        # datapath inputs and holes
        ctx.set(dut.dp2reg_status_err_code, 0x5A)
        ctx.set(dut.dp2reg_status_idle, 1)
        assert (await _read(ctx, bus, rm.register("STATUS").offset))[0] == 0x5A04
        assert await _read(ctx, bus, 0xFFC) == (0, Resp.DECERR)
        assert await _write(ctx, bus, 0x034, 1) == Resp.DECERR
        for _ in range(2):
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert sum(pulses) == 1, pulses


# -- the CSR block under cocotb -------------------------------------------------------------

runner.register_design("csr_block", "s4accel.hw.csr.block:CsrBlock")


@pytest.mark.parametrize("sim", runner.SIMULATORS)
@pytest.mark.parametrize("config", ["tiny", "fpga"])
@pytest.mark.rtl
@pytest.mark.slow
def test_csr_block_cocotb(sim, config, seed):
    if sim == "icarus" and shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog is not installed")
    runner.run_tests("csr_block", config, sim, "s4accel.sim.tb.csr",
                     env={"S4_SEED": seed}, tag=f"pytest_{seed}")


def test_validation_does_not_mutate_input():
    d = _small()
    before = copy.deepcopy(d)
    RegisterMap.from_dict(d)
    assert d == before
