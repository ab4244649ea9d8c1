"""The driver's board backend: an FPGA running ``hw/fpga/boards.py`` ``BoardTop``, reached
through its UART host bridge (``hw/fpga/uart.py`` documents the byte protocol; its command
and reply bytes and lengths are ``s4accel.base.uart_proto``, shared with the gateware).

The backend speaks the protocol over a *transport*, any object with ``async send(data)`` and
``async recv(n) -> bytes`` (fewer than ``n`` bytes only on a timeout): :class:`SerialTransport`
for a serial port (pyserial), or the simulated serial line of ``sim/tb/uart.py``.

Running a layer on a board::

    import asyncio
    from s4accel.sw.driver import Driver
    from s4accel.sw.uart_backend import SerialTransport, UartBackend

    async def main():
        with SerialTransport("/dev/ttyUSB0", 115200) as port:
            dev = Driver(UartBackend(port))
            return await dev.run_layer(x, packed)

    y = asyncio.run(main()).y
"""

from __future__ import annotations

import asyncio
import struct

from ..base.uart_proto import DRAM_BYTES, Command
from .driver import DRAM_BASE, Backend, CsrBusError

__all__ = ["UartBackend", "SerialTransport", "BridgeError", "Command", "DRAM_BYTES"]

_RESP = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}


class BridgeError(RuntimeError):
    """The bridge answered something unexpected, too little (a timeout), or a bus error; the
    message names the command and shows the bytes received."""


def _hex(data: bytes) -> str:
    return data.hex(" ") if data else "nothing"


class UartBackend(Backend):
    """:class:`~s4accel.sw.driver.Backend` over the UART bridge.

    ``dram_base`` / ``dram_size`` are the board's DRAM as the driver sees it (the bridge and the
    accelerator see the same addresses; the board's RAM wraps at its size, so accesses outside
    ``[dram_base, dram_base + dram_size)`` are refused here rather than aliasing).
    """

    #: Longest memory command (the protocol's ``len16``).
    MAX_CHUNK = 0xFFFF

    def __init__(self, transport, *, dram_base=DRAM_BASE, dram_size=DRAM_BYTES):
        self.transport = transport
        self.dram_base, self.dram_size = dram_base, dram_size

    async def _command(self, name: str, request: bytes, reply_len: int) -> bytes:
        await self.transport.send(request)
        reply = await self.transport.recv(reply_len)
        head = Command(request[0]).reply
        if len(reply) != reply_len or reply[0] != head:
            reply += await self._drain()
            what = "no reply" if not reply else f"received {_hex(reply)}"
            raise BridgeError(f"{name}: sent {_hex(request[:16])}"
                              f"{' ...' if len(request) > 16 else ''}, expected {reply_len} "
                              f"bytes starting {head:02x}, {what}")
        return reply

    async def _drain(self) -> bytes:
        """What else the bridge sent (for the error message)."""
        drain = getattr(self.transport, "drain", None)
        return await drain() if drain else b""

    @staticmethod
    def _check_resp(name, resp):
        if resp != 0:
            raise BridgeError(f"{name}: the bus answered {_RESP.get(resp, resp)}")

    def _check_range(self, name, addr, n):
        if n < 0 or addr < self.dram_base or addr + n > self.dram_base + self.dram_size:
            raise ValueError(f"{name} [{addr:#x}, {addr + n:#x}) is outside the board DRAM "
                             f"[{self.dram_base:#x}, {self.dram_base + self.dram_size:#x})")

    # -- Backend ----------------------------------------------------------------------------
    async def read32(self, offset):
        name = f"CSR read {offset:#x}"
        reply = await self._command(name, struct.pack("<BI", Command.CSR_READ, offset),
                                    Command.CSR_READ.reply_len)
        if reply[1] != 0:
            raise CsrBusError(offset, False, _RESP.get(reply[1], str(reply[1])))
        return struct.unpack_from("<I", reply, 2)[0]

    async def write32(self, offset, value):
        name = f"CSR write {offset:#x}"
        reply = await self._command(
            name, struct.pack("<BII", Command.CSR_WRITE, offset, value & 0xFFFFFFFF),
            Command.CSR_WRITE.reply_len)
        if reply[1] != 0:
            raise CsrBusError(offset, True, _RESP.get(reply[1], str(reply[1])))

    async def mem_write(self, addr, data):
        data = bytes(data)
        self._check_range("memory write", addr, len(data))
        for off in range(0, len(data), self.MAX_CHUNK):
            chunk = data[off:off + self.MAX_CHUNK]
            name = f"memory write of {len(chunk)} bytes at {addr + off:#x}"
            reply = await self._command(
                name, struct.pack("<BIH", Command.MEM_WRITE, addr + off, len(chunk)) + chunk,
                Command.MEM_WRITE.reply_len)
            self._check_resp(name, reply[1])

    async def mem_read(self, addr, n):
        self._check_range("memory read", addr, n)
        out = bytearray()
        for off in range(0, n, self.MAX_CHUNK):
            size = min(self.MAX_CHUNK, n - off)
            name = f"memory read of {size} bytes at {addr + off:#x}"
            reply = await self._command(
                name, struct.pack("<BIH", Command.MEM_READ, addr + off, size),
                Command.MEM_READ.reply_len + size)
            self._check_resp(name, reply[-1])
            out += reply[1:-1]
        return bytes(out)

    async def status(self) -> tuple[int, int]:
        """``(flags, cycles)``: the status command's ``flags8`` (bit 0 the interrupt) and the
        device cycle counter. A lost byte or framing error flag raises :class:`BridgeError`."""
        reply = await self._command("status", bytes([Command.STATUS]),
                                   Command.STATUS.reply_len)
        flags, cycles = reply[1], struct.unpack_from("<Q", reply, 2)[0]
        if flags & 0b0110:
            raise BridgeError(f"status: the bridge reports "
                              f"{'a lost byte' if flags & 2 else 'a framing error'} "
                              f"(flags {flags:#04x}): the serial line is unreliable")
        return flags, cycles

    async def wait_irq(self, max_cycles):
        flags, start = await self.status()
        now = start
        while not flags & 1:
            if now - start >= max_cycles:
                return False
            flags, now = await self.status()
        return True

    async def cycle(self):
        return (await self.status())[1]

    def inject_bus_error(self, lo, hi, kind):
        raise NotImplementedError("a board's DRAM cannot inject bus errors (a test hook of the "
                                  "simulated backends)")


class SerialTransport:
    """A serial port through pyserial (``pip install pyserial``, or the ``[fpga]`` extra).

    ``timeout`` is seconds of silence after which :meth:`recv` returns what it has. Use as a
    context manager or call :meth:`close`.
    """

    def __init__(self, port: str, baud: int = 115_200, *, timeout: float = 2.0):
        try:
            import serial
        except ImportError as e:
            raise ImportError("SerialTransport needs pyserial: pip install pyserial "
                              "(or pip install -e '.[fpga]')") from e
        self.port = serial.Serial(port, baud, timeout=timeout)
        self.port.reset_input_buffer()

    async def send(self, data: bytes) -> None:
        await asyncio.to_thread(self.port.write, data)

    async def recv(self, n: int) -> bytes:
        return bytes(await asyncio.to_thread(self.port.read, n))

    async def drain(self) -> bytes:
        return bytes(await asyncio.to_thread(self.port.read, self.port.in_waiting))

    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
