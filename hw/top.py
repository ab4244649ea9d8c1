"""The whole accelerator: register block, command processor, DMA engine and SPU."""

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import Config
from .bus.axi import AXI4, AXI4Lite
from .cmd.processor import CommandProcessor
from .csr.block import CsrBlock
from .dma.engine import DmaEngine
from .spu.spu import Spu

__all__ = ["S4Top"]


class S4Top(wiring.Component):
    """S4-open accelerator top level.

    Members
    -------
    csr : In(AXI4Lite.Signature(addr_width=12, data_width=32))
        Host access to the register map (``sw/regmap.yaml``).
    dram : Out(AXI4.Signature(addr_width=32, data_width=config.dram_bus_bits, id_width=4))
        Manager port to DRAM: descriptors, weights, activations, results.
    irq : Out(1)
        Interrupt: ``CTRL.irq_en`` and any ``IRQ`` bit.
    """

    @staticmethod
    def check(config: Config):
        """Raise ``ValueError`` if the RTL cannot build ``config``."""
        if config.spus != 1:
            raise ValueError(f"the RTL top level builds one SPU, not spus={config.spus} "
                             "(multi-SPU arrays are the performance model's for now)")

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
        spu = Spu(cfg)
        m.submodules.spu = ResetInserter(cmd.flush)(spu)

        wiring.connect(m, wiring.flipped(self.csr), csr.bus)
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
            d("ring_head_index").eq(cmd.ring_head),
            d("status_busy").eq(cmd.busy),
            d("status_error").eq(cmd.error),
            d("status_idle").eq(~cmd.busy & dma.o_idle),
            d("status_err_code").eq(cmd.err_code),
            d("err_addr_addr").eq(cmd.err_addr),
            d("irq_done_set").eq(cmd.irq_done_set),
            d("irq_error_set").eq(cmd.irq_error_set),
            d("perf_busy_count").eq(spu.busy_cycles),
            d("perf_mac_count").eq(spu.mac_cycles),
            d("perf_stall_in_count").eq(spu.stall_input_cycles),
            d("perf_stall_out_count").eq(spu.stall_output_cycles),
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
        wiring.connect(m, dma.o_rd_done, cmd.dma_rd_done)
        wiring.connect(m, cmd.dma_wr, dma.i_wr)
        wiring.connect(m, dma.o_wr_done, cmd.dma_wr_done)
        m.d.comb += [dma.abort.eq(cmd.dma_abort), cmd.dma_idle.eq(dma.o_idle)]

        # command processor <-> SPU
        m.d.comb += [
            spu.i_gemm.valid.eq(cmd.spu_gemm_valid),
            spu.i_gemm.payload.eq(cmd.spu_gemm.body.gemm),
            cmd.spu_gemm_ready.eq(spu.i_gemm.ready),
            cmd.spu_gemm_done.eq(spu.gemm_done),
            spu.load_start.eq(cmd.spu_load_start),
            spu.load_target.eq(cmd.spu_load_target),
            spu.load_addr.eq(cmd.spu_load_addr),
            spu.store_start.eq(cmd.spu_store_start),
            spu.store_addr.eq(cmd.spu_store_addr),
            spu.store_beats.eq(cmd.spu_store_beats),
        ]
        wiring.connect(m, cmd.spu_load, spu.i_load)
        # SPU store data -> DMA write data
        m.d.comb += [
            dma.i_wr_data.valid.eq(spu.o_store.valid),
            dma.i_wr_data.payload.data.eq(spu.o_store.payload.data),
            spu.o_store.ready.eq(dma.i_wr_data.ready),
        ]
        return m
