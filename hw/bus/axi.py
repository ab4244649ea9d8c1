"""AXI4 and AXI4-Lite as ``wiring.Signature`` s, from the manager's point of view.

Member names are the AMBA names in lower case, so a port ``bus`` of this signature appears in
generated Verilog as ``bus__awaddr``, ``bus__awvalid``, ... and cocotbext-axi binds it with
``AxiBus.from_prefix(dut, "bus_")`` (its prefix joins with one more underscore).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4Lite", "AXI4", "Resp", "BURST_INCR"]

BURST_INCR = 1


class Resp:
    """AXI response codes."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


def _check(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, not {value!r}")


class AXI4Lite:
    class Signature(wiring.Signature):
        """AXI4-Lite manager side (``flip()`` for the subordinate)."""

        def __init__(self, *, addr_width=16, data_width=32):
            _check("addr_width", addr_width, range(1, 65))
            _check("data_width", data_width, {32, 64})
            self._aw, self._dw = addr_width, data_width
            super().__init__({
                "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
                "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
                "wready": In(1),
                "bresp": In(2), "bvalid": In(1), "bready": Out(1),
                "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
                "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
            })

        @property
        def addr_width(self):
            return self._aw

        @property
        def data_width(self):
            return self._dw

        def __eq__(self, other):
            return (type(other) is type(self) and other.addr_width == self.addr_width
                    and other.data_width == self.data_width)

        def __repr__(self):
            return f"AXI4Lite.Signature(addr_width={self._aw}, data_width={self._dw})"


class AXI4:
    class Signature(wiring.Signature):
        """AXI4 manager side with INCR bursts (``flip()`` for the subordinate)."""

        def __init__(self, *, addr_width=32, data_width=64, id_width=4):
            _check("addr_width", addr_width, range(12, 65))
            _check("data_width", data_width, {32, 64, 128, 256, 512})
            _check("id_width", id_width, range(1, 17))
            self._aw, self._dw, self._iw = addr_width, data_width, id_width
            super().__init__({
                "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8),
                "awsize": Out(3), "awburst": Out(2), "awprot": Out(3), "awcache": Out(4),
                "awvalid": Out(1), "awready": In(1),
                "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
                "wvalid": Out(1), "wready": In(1),
                "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
                "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8),
                "arsize": Out(3), "arburst": Out(2), "arprot": Out(3), "arcache": Out(4),
                "arvalid": Out(1), "arready": In(1),
                "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
                "rvalid": In(1), "rready": Out(1),
            })

        @property
        def addr_width(self):
            return self._aw

        @property
        def data_width(self):
            return self._dw

        @property
        def id_width(self):
            return self._iw

        def __eq__(self, other):
            return (type(other) is type(self) and other.addr_width == self.addr_width
                    and other.data_width == self.data_width and other.id_width == self.id_width)

        def __repr__(self):
            return (f"AXI4.Signature(addr_width={self._aw}, data_width={self._dw}, "
                    f"id_width={self._iw})")
