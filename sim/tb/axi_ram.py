"""cocotbext-axi's ``AxiRam`` with error responses (SLVERR / DECERR) for chosen address
ranges: the DRAM model of the DMA and top-level testbenches."""

from __future__ import annotations

import logging

from cocotbext.axi.axi_ram import AxiRamRead, AxiRamWrite
from cocotbext.axi.constants import AxiResp
from cocotbext.axi.memory import Memory

__all__ = ["Faults", "FaultyAxiRam", "AxiResp"]


class Faults:
    """Address ranges ``[lo, hi)`` answered with an error response instead of OKAY."""

    def __init__(self, ranges=()):
        self.ranges = list(ranges)

    def add(self, lo, hi, resp):
        """Answer ``resp`` (``AxiResp.SLVERR`` or ``AxiResp.DECERR``) for ``[lo, hi)``."""
        self.ranges.append((lo, hi, resp))

    def resp(self, address):
        for lo, hi, resp in self.ranges:
            if lo <= address < hi:
                return resp
        return AxiResp.OKAY


class _FaultyRead(AxiRamRead):
    # AxiSlaveRead builds each R beat as OKAY, then reads, then sends: the read records the
    # response and the wrapped send applies it (the data is still the RAM's).
    def __init__(self, *args, faults, **kwargs):
        self.faults = faults
        self._resp = AxiResp.OKAY
        super().__init__(*args, **kwargs)
        send = self.r_channel.send

        async def send_with_resp(r):
            r.rresp = self._resp
            await send(r)

        self.r_channel.send = send_with_resp

    async def _read(self, address, length):
        self._resp = self.faults.resp(address)
        return await super()._read(address, length)


class _FaultyWrite(AxiRamWrite):
    # the first faulty beat of a burst sets its BRESP; faulty beats are not written
    def __init__(self, *args, faults, **kwargs):
        self.faults = faults
        self._resp = AxiResp.OKAY
        super().__init__(*args, **kwargs)
        send = self.b_channel.send

        async def send_with_resp(b):
            if self._resp != AxiResp.OKAY:
                b.bresp = self._resp
            self._resp = AxiResp.OKAY
            await send(b)

        self.b_channel.send = send_with_resp

    async def _write(self, address, data):
        resp = self.faults.resp(address)
        if resp != AxiResp.OKAY:
            if self._resp == AxiResp.OKAY:
                self._resp = resp
            return
        await super()._write(address, data)


class FaultyAxiRam(Memory):
    """cocotbext-axi's ``AxiRam`` plus error responses for the address ranges of ``faults``."""

    def __init__(self, bus, clock, reset, size, faults):
        super().__init__(size)
        self.write_if = _FaultyWrite(bus.write, clock, reset, mem=self.mem, faults=faults)
        self.read_if = _FaultyRead(bus.read, clock, reset, mem=self.mem, faults=faults)
        for side in (self.write_if, self.read_if):
            side.log.setLevel(logging.WARNING)
