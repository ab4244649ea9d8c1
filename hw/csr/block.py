"""The CSR block: an AXI4-Lite subordinate generated from the register map."""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...base.config import Config
from ...base.regmap import RegisterMap, load
from ..bus.axi import AXI4Lite, Resp

__all__ = ["CsrBlock", "PortInfo"]


class PortInfo(NamedTuple):
    """One datapath-side port of a :class:`CsrBlock`.

    ``direction`` is ``"reg2dp"`` (an ``Out`` port) or ``"dp2reg"`` (an ``In`` port); ``role``
    is ``"value"`` (rw and w1c current value, ro datapath input), ``"pulse"`` (w1p) or
    ``"set"`` (w1c set pulses).
    """

    name: str
    register: str
    field: str
    access: str
    direction: str
    role: str
    width: int


class CsrBlock(wiring.Component):
    """Control and status registers of the accelerator, an AXI4-Lite subordinate.

    Every port except ``bus`` and ``irq`` comes from a field of the register map (by default
    ``s4accel/base/regmap/regmap.yaml``), named by direction as NVDLA does, with ``<reg>`` and
    ``<field>`` in lower case:

    ======== ==================================== ========================================
    access   port                                 behaviour
    ======== ==================================== ========================================
    rw       ``reg2dp_<reg>_<field>``: Out(w)     the stored value (reset value after reset)
    w1p      ``reg2dp_<reg>_<field>``: Out(w)     high for one cycle per bit written as 1
    w1c      ``dp2reg_<reg>_<field>_set``: In(w)  each bit high for a cycle sets that bit
             ``reg2dp_<reg>_<field>``: Out(w)     the stored value; writing 1 clears a bit
    ro       ``dp2reg_<reg>_<field>``: In(w)      read as driven (fields without a reset)
    ro       (none)                               constants, resolved for ``config``
    ======== ==================================== ========================================

    A set pulse and a clearing write in the same cycle leave the bit set. :meth:`ports` lists
    the ports, :meth:`field_port` and :meth:`field_set_port` return them by register and field.

    Bus behaviour: AW and W are accepted in either order or together, one write and one read
    outstanding; the response follows the cycle after both have arrived, and the register
    takes the value (a ``w1p`` field pulses) in the cycle after that. ``wstrb`` is honoured
    per byte (bits in bytes whose strobe is low are not written, cleared or pulsed). Writes to
    read-only fields are ignored and answer OKAY; addresses without a register answer DECERR
    (reads return 0). The low two address bits and ``awprot``/``arprot`` are ignored.

    Members
    -------
    bus : In(AXI4Lite.Signature(addr_width=12, data_width=32))
        Host access (the subordinate side).
    irq : Out(1)
        When the map declares an interrupt: its enable field AND any bit of its status register.
    """

    def __init__(self, config: Config, regmap: RegisterMap | None = None):
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        if regmap is None:
            regmap = load()
        if not isinstance(regmap, RegisterMap):
            raise TypeError(f"regmap must be a RegisterMap, not {regmap!r}")
        self._config = config
        self._regmap = regmap.resolve_resets(config)
        ports = []
        for r, f in self._regmap.fields():
            if f.access == "rw":
                roles = [("reg2dp", "value")]
            elif f.access == "w1p":
                roles = [("reg2dp", "pulse")]
            elif f.access == "w1c":
                roles = [("dp2reg", "set"), ("reg2dp", "value")]
            elif f.is_datapath:
                roles = [("dp2reg", "value")]
            else:
                roles = []
            for direction, role in roles:
                suffix = "_set" if role == "set" else ""
                ports.append(PortInfo(f"{direction}_{r.name.lower()}_{f.name}{suffix}", r.name,
                                      f.name, f.access, direction, role, f.width))
        self._ports = tuple(ports)
        members = {"bus": In(AXI4Lite.Signature(addr_width=self._regmap.addr_width,
                                                data_width=self._regmap.data_width))}
        for p in ports:
            members[p.name] = (Out if p.direction == "reg2dp" else In)(p.width)
        if self._regmap.interrupt is not None:
            members["irq"] = Out(1)
        super().__init__(members)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def regmap(self) -> RegisterMap:
        """The register map with every reset value resolved for :attr:`config`."""
        return self._regmap

    def ports(self) -> tuple:
        """Every datapath-side port as a :class:`PortInfo`, in register map order."""
        return self._ports

    def _find(self, register, field, roles):
        register = register.upper()
        self._regmap.register(register).field(field)  # KeyError naming what is missing
        for p in self._ports:
            if p.register == register and p.field == field and p.role in roles:
                return getattr(self, p.name)
        return None

    def field_port(self, register: str, field: str):
        """The port of a field: ``reg2dp_*`` for rw, w1p and w1c fields, ``dp2reg_*`` for ro
        fields driven by the datapath. Constants have none (ValueError)."""
        port = self._find(register, field, ("value", "pulse"))
        if port is None:
            raise ValueError(f"register {register.upper()} field {field} is a constant and has "
                             f"no port")
        return port

    def field_set_port(self, register: str, field: str):
        """The ``dp2reg_*_set`` input of a w1c field."""
        port = self._find(register, field, ("set",))
        if port is None:
            raise ValueError(f"register {register.upper()} field {field} is not w1c and has no "
                             f"set port")
        return port

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        rmap = self._regmap
        data_width = rmap.data_width

        # -- storage and datapath-side ports ---------------------------------------------------
        value = {}  # (reg, field) -> what a read returns
        store = {}
        for r, f in rmap.fields():
            key = (r.name, f.name)
            base = f"{r.name.lower()}_{f.name}"
            if f.access in ("rw", "w1c"):
                store[key] = Signal(f.width, init=f.reset, name=f"r_{base}")
                m.d.comb += getattr(self, f"reg2dp_{base}").eq(store[key])
                value[key] = store[key]
            elif f.access == "w1p":
                store[key] = Signal(f.width, name=f"p_{base}")
                m.d.comb += getattr(self, f"reg2dp_{base}").eq(store[key])
                m.d.sync += store[key].eq(0)
                value[key] = Const(0, f.width)
            elif f.is_datapath:
                value[key] = getattr(self, f"dp2reg_{base}")
            else:
                value[key] = Const(f.reset, f.width)

        # -- write path: AW and W in any order, then B ----------------------------------------
        aw_full = Signal()
        aw_addr = Signal(rmap.addr_width)
        w_full = Signal()
        w_data = Signal(data_width)
        w_strb = Signal(data_width // 8)
        b_valid = Signal()
        b_resp = Signal(2)
        do_write = Signal()
        m.d.comb += [
            bus.awready.eq(~aw_full & ~b_valid),
            bus.wready.eq(~w_full & ~b_valid),
            bus.bvalid.eq(b_valid),
            bus.bresp.eq(b_resp),
            do_write.eq(aw_full & w_full & ~b_valid),
        ]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), b_valid.eq(1)]
        with m.If(b_valid & bus.bready):
            m.d.sync += b_valid.eq(0)

        w_mask = Cat(*(w_strb[i].replicate(8) for i in range(data_width // 8)))
        clear = {}  # w1c bits cleared by this cycle's write
        for r, f in rmap.fields():
            if f.access == "w1c":
                clear[(r.name, f.name)] = Signal(f.width, name=f"c_{r.name.lower()}_{f.name}")

        # the write is decoded into a registered one-hot select, and the registers take the
        # (registered) data a cycle later: the address decode and the write enables of some
        # 1,300 register bits, spread over the chip next to their users, are never in one cycle
        # (the response still goes out with the decode; any later read sees the new value)
        hit = {r.name: aw_addr[2:] == r.offset >> 2 for r in rmap.registers}
        sel = {r.name: Signal(name=f"wsel_{r.name.lower()}") for r in rmap.registers}
        wq_data = Signal(data_width, reset_less=True)
        wq_mask = Signal(data_width, reset_less=True)
        m.d.sync += [wq_data.eq(w_data), wq_mask.eq(w_mask)]
        m.d.sync += [sel[name].eq(do_write & h) for name, h in hit.items()]
        with m.If(do_write):
            m.d.sync += b_resp.eq(Mux(Cat(*hit.values()).any(), Resp.OKAY, Resp.DECERR))
        for r in rmap.registers:
            with m.If(sel[r.name]):
                for f in r.fields:
                    key = (r.name, f.name)
                    bits = slice(f.lsb, f.lsb + f.width)
                    mask, data = wq_mask[bits], wq_data[bits]
                    if f.access == "rw":
                        m.d.sync += store[key].eq((store[key] & ~mask) | (data & mask))
                    elif f.access == "w1p":
                        m.d.sync += store[key].eq(data & mask)
                    elif f.access == "w1c":
                        m.d.comb += clear[key].eq(data & mask)

        for (reg, field), clr in clear.items():
            s = store[(reg, field)]
            sets = getattr(self, f"dp2reg_{reg.lower()}_{field}_set")
            m.d.sync += s.eq((s & ~clr) | sets)

        # -- read path -----------------------------------------------------------------------
        # two stages: the address is decoded into one select flag per register first, then
        # the registers' values are AND-ORed from those flags, so the bus master's address
        # logic and the read mux never share a cycle
        r_valid = Signal()
        r_data = Signal(data_width)
        r_resp = Signal(2)
        a_valid = Signal()
        sel = Signal(len(rmap.registers))
        m.d.comb += [
            bus.arready.eq(~r_valid & ~a_valid),
            bus.rvalid.eq(r_valid),
            bus.rdata.eq(r_data),
            bus.rresp.eq(r_resp),
        ]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [a_valid.eq(1),
                         sel.eq(Cat(bus.araddr[2:] == (r.offset >> 2) for r in rmap.registers))]
        with m.If(a_valid):
            picked = Const(0, data_width)
            for i, r in enumerate(rmap.registers):
                picked = picked | Mux(sel[i], self._read_value(r, value, data_width), 0)
            m.d.sync += [a_valid.eq(0), r_valid.eq(1), r_data.eq(picked),
                         r_resp.eq(Mux(sel.any(), Resp.OKAY, Resp.DECERR))]
        with m.If(r_valid & bus.rready):
            m.d.sync += r_valid.eq(0)

        # -- interrupt -----------------------------------------------------------------------
        if rmap.interrupt is not None:
            i = rmap.interrupt
            status = Cat(*(store[(i.status, f.name)] for f in rmap.register(i.status).fields))
            m.d.comb += self.irq.eq(store[(i.enable_register, i.enable_field)] & status.any())
        return m

    @staticmethod
    def _read_value(r, value, data_width):
        parts, pos = [], 0
        for f in sorted(r.fields, key=lambda f: f.lsb):
            if f.lsb > pos:
                parts.append(Const(0, f.lsb - pos))
            parts.append(value[(r.name, f.name)])
            pos = f.lsb + f.width
        if pos < data_width:
            parts.append(Const(0, data_width - pos))
        return Cat(*parts)
