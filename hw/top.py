"""The whole accelerator: register block, command processor, DMA engine and SPU."""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..base.config import Config
from .bus.axi import AXI4, AXI4Lite
from .bus.slice import RegSlice, SkidSlice
from .cmd.descriptors import MAX_SPUS, ex_cmd_layout
from .cmd.fanout import SpuFanout, spu_select
from .cmd.processor import CommandProcessor
from .csr.block import CsrBlock
from .bus.l2 import L2Router
from .dma.engine import DmaEngine
from .jpeg.engine import act_write_layout
from .spu.spu import Spu

__all__ = ["S4Top"]


def _or_all(values):
    values = list(values)
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out


class S4Top(wiring.Component):
    """S4-open accelerator top level.

    Members
    -------
    csr : In(AXI4Lite.Signature(addr_width=12, data_width=32))
        Host access to the register map (``s4accel/base/regmap/regmap.yaml``).
    dram : Out(AXI4.Signature(addr_width=32, data_width=config.dram_bus_bits, id_width=4))
        Manager port to DRAM: descriptors, weights, activations, results (bursts into the
        on-chip L2, ``config.l2_kib``, are served inside: ``hw/bus/l2.py``).
    irq : Out(1)
        Interrupt: ``CTRL.irq_en`` and any ``IRQ`` bit.
    """

    @staticmethod
    def check(config: Config):
        """Raise ``ValueError`` if the RTL cannot build ``config``."""
        if config.spus > MAX_SPUS:
            raise ValueError(f"the RTL top level builds at most {MAX_SPUS} SPUs, not "
                             f"spus={config.spus} (larger arrays are the performance model's)")
        if config.dram_bus_bits > 256:
            raise ValueError(f"the RTL fetches 32-byte descriptors as whole bus words, so its DRAM "
                             f"bus is at most 256 bits, not dram_bus_bits={config.dram_bus_bits} "
                             f"(wider buses are the performance model's)")
        if config.jpeg_decoders > 1:
            raise ValueError(f"the RTL builds at most one JPEG decoder, not jpeg_decoders="
                             f"{config.jpeg_decoders} (DECODEs run one at a time on the LOAD "
                             f"stage)")

    def __new__(cls, config: Config, *args, **kwargs):
        cls.check(config)   # before Elaboratable registers the object as one to be used
        return super().__new__(cls)

    def __init__(self, config: Config):
        self._config = config
        super().__init__({
            "csr": In(AXI4Lite.Signature(addr_width=12, data_width=32)),
            "dram": Out(AXI4.Signature(addr_width=32, data_width=config.dram_bus_bits,
                                       id_width=4)),
            "irq": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.csr = csr = CsrBlock(cfg)
        m.submodules.cmd = cmd = CommandProcessor(cfg)
        m.submodules.dma = dma = DmaEngine(cfg)
        n = cfg.spus
        spus = []
        for i in range(n):
            spu = Spu(cfg)
            m.submodules[f"spu{i}" if n > 1 else "spu"] = ResetInserter(cmd.flush)(spu)
            spus.append(spu)

        def selected(mask):
            sel = Signal(n)
            m.d.comb += sel.eq(spu_select(mask))
            return sel
        wiring.connect(m, wiring.flipped(self.csr), csr.bus)
        if cfg.l2_kib:
            m.submodules.l2 = l2 = L2Router(kib=cfg.l2_kib, data_width=cfg.dram_bus_bits)
            wiring.connect(m, dma.bus, l2.up)
            wiring.connect(m, l2.down, wiring.flipped(self.dram))
        else:
            wiring.connect(m, dma.bus, wiring.flipped(self.dram))
        m.d.comb += self.irq.eq(csr.irq)

        r = lambda name: getattr(csr, f"reg2dp_{name}")  # noqa: E731
        d = lambda name: getattr(csr, f"dp2reg_{name}")  # noqa: E731
        m.d.comb += [
            cmd.enable.eq(r("ctrl_enable")),
            cmd.soft_reset.eq(r("ctrl_soft_reset")),
            cmd.ring_base.eq(r("ring_base_addr")),
            cmd.ring_size.eq(r("ring_size_slots")),
            cmd.ring_tail.eq(r("ring_tail_index")),
            cmd.watchdog.eq(r("watchdog_cycles")),
            cmd.error_pending.eq(r("irq_error")),
            cmd.windows.eq(dma.windows),
            d("ring_head_index").eq(cmd.ring_head),
            d("status_busy").eq(cmd.busy),
            d("status_error").eq(cmd.error),
            d("status_idle").eq(~cmd.busy & dma.o_idle),
            d("status_err_code").eq(cmd.err_code),
            d("err_addr_addr").eq(cmd.err_addr),
            d("irq_done_set").eq(cmd.irq_done_set),
            d("irq_error_set").eq(cmd.irq_error_set),
            # busy: any SPU; MAC and stall cycles: summed over the SPUs (MACs = count * lanes)
            d("perf_busy_count").eq(spus[0].busy_cycles),
            d("perf_mac_count").eq(sum(u.mac_cycles for u in spus)[:32]),
            d("perf_stall_in_count").eq(sum(u.stall_input_cycles for u in spus)[:32]),
            d("perf_stall_out_count").eq(sum(u.stall_output_cycles for u in spus)[:32]),
            d("perf_dma_rd_bytes_count").eq(dma.rd_bytes),
            d("perf_dma_wr_bytes_count").eq(dma.wr_bytes),
            d("perf_desc_count").eq(cmd.desc_done),
        ]
        en, rd, wr = r("win_ctrl_en"), r("win_ctrl_rd"), r("win_ctrl_wr")
        for i in range(4):
            w = dma.windows[i]
            m.d.comb += [w.base.eq(r(f"win{i}_base_addr")), w.limit.eq(r(f"win{i}_limit_addr")),
                         w.enable.eq(en[i]), w.read.eq(rd[i]), w.write.eq(wr[i])]

        # command processor <-> DMA
        wiring.connect(m, cmd.dma_rd, dma.i_rd)
        wiring.connect(m, dma.o_rd_data, cmd.dma_rd_data)
        wiring.connect(m, cmd.dma_wr, dma.i_wr)
        wiring.connect(m, dma.o_wr_done, cmd.dma_wr_done)
        m.d.comb += [dma.abort.eq(cmd.dma_abort), cmd.dma_idle.eq(dma.o_idle)]

        # command processor <-> SPUs
        # GEMM: offered to every selected SPU, done when the last one is. The SPUs are idle
        # whenever the processor issues one (it waits for the previous one's completion), so
        # they all take it in the same cycle.
        # A VOP goes the same way, to the SPU's vector sequencer.
        g_fan = SpuFanout(ex_cmd_layout, n, done=True)
        m.submodules.gemm_fanout = ResetInserter(cmd.flush)(g_fan)
        wiring.connect(m, cmd.spu_gemm, g_fan.i)
        wiring.connect(m, g_fan.o_done, cmd.spu_gemm_done)
        for i, u in enumerate(spus):
            o = g_fan.o[i]
            is_vop = o.payload.vop if cfg.vec_max_row else 0
            m.d.comb += [u.i_gemm.payload.eq(o.payload.body.gemm),
                         u.i_gemm.valid.eq(o.valid & ~is_vop)]
            if cfg.vec_max_row:
                m.d.comb += [u.i_vop.payload.eq(o.payload.body.vop),
                             u.i_vop.valid.eq(o.valid & is_vop),
                             o.ready.eq(Mux(is_vop, u.i_vop.ready, u.i_gemm.ready))]
            else:
                m.d.comb += o.ready.eq(u.i_gemm.ready)
        m.d.comb += g_fan.done.eq(Cat(u.gemm_done for u in spus))
        # LOAD: one DRAM read written into every selected SPU (multicast); each SPU takes a
        # word in its own time (an SPU may need several cycles per word, as LUT loads do).
        # (through a register slice: the SPUs' readies and the fan-out's bookkeeping stay off
        # the path back into the command processor and the DMA's read-data registers)
        m.submodules.load_slice = ld = RegSlice(cmd.spu_load.payload.shape())
        l_fan = SpuFanout(cmd.spu_load.payload.item.shape(), n)
        m.submodules.load_fanout = ResetInserter(cmd.flush)(l_fan)
        wiring.connect(m, cmd.spu_load, ld.i)
        wiring.connect(m, ld.o, l_fan.i)
        m.d.comb += ld.clear.eq(cmd.flush)
        l_sel = selected(cmd.spu_load_cmd.mask)
        for i, u in enumerate(spus):
            wiring.connect(m, l_fan.o[i], u.i_load)
            m.d.comb += [u.load_start.eq(cmd.spu_load_start & l_sel[i]),
                         u.load_target.eq(cmd.spu_load_cmd.target),
                         u.load_addr.eq(cmd.spu_load_cmd.addr),
                         u.load_fmt.eq(cmd.spu_load_cmd.fmt)]
        # DECODE: the decoder (in the command processor) writes pixels into the ACT memories
        # of every selected SPU
        if cfg.jpeg_decoders:
            d_fan = SpuFanout(act_write_layout, n)
            m.submodules.dec_fanout = ResetInserter(cmd.flush)(d_fan)
            wiring.connect(m, cmd.spu_dec, d_fan.i)
            for i, u in enumerate(spus):
                wiring.connect(m, d_fan.o[i], u.i_dec)
        # a load is done when its last word is in the SPUs, not merely in the slice: the DMA's
        # status waits until the slice is empty
        ld_empty = ~ld.o.valid & ld.i.ready
        m.d.comb += [cmd.dma_rd_done.valid.eq(dma.o_rd_done.valid & ld_empty),
                     cmd.dma_rd_done.payload.eq(dma.o_rd_done.payload),
                     dma.o_rd_done.ready.eq(cmd.dma_rd_done.ready & ld_empty)]
        # (through a register slice: the DMA's W-channel ready, which comes from the bus, stays
        # off the SPUs' output-word bookkeeping)
        m.submodules.store_slice = sts = RegSlice(dma.i_wr_data.payload.shape())
        # and a skid register after it, whose ready is a flip-flop: the DMA's ready (its W
        # length queue and burst state, then wvalid) then loads one flip-flop beside the DMA
        # instead of the slice's ~130 enables wherever the placer puts them (u_fpga31: 10.93 ns)
        m.submodules.store_skid = stk = SkidSlice(dma.i_wr_data.payload.shape())
        m.d.comb += [sts.clear.eq(cmd.flush), stk.clear.eq(cmd.flush)]
        wiring.connect(m, sts.o, stk.i)
        wiring.connect(m, stk.o, dma.i_wr_data)
        # STORE: from the lowest selected SPU (one-hot select, then AND/OR)
        s_sel = selected(cmd.spu_store_cmd.mask)
        s_one = Signal(n)          # one-hot: the lowest set bit of s_sel
        m.d.comb += s_one.eq(s_sel & -s_sel)
        st_valid, st_data = Signal(), Signal(len(dma.i_wr_data.payload.data))
        for i, u in enumerate(spus):
            m.d.comb += [u.store_start.eq(cmd.spu_store_start & s_one[i]),
                         u.store_addr.eq(cmd.spu_store_cmd.addr),
                         u.store_beats.eq(cmd.spu_store_cmd.beats),
                         u.o_store.ready.eq(sts.i.ready & s_one[i])]
        m.d.comb += [
            st_valid.eq(Cat(u.o_store.valid & s_one[i] for i, u in enumerate(spus)).any()),
            st_data.eq(_or_all(u.o_store.payload.data & s_one[i].replicate(len(st_data))
                               for i, u in enumerate(spus))),
        ]
        m.d.comb += [sts.i.valid.eq(st_valid), sts.i.payload.data.eq(st_data)]
        return m
