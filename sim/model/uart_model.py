"""The UART bridge's byte protocol (``s4accel.base.uart_proto``) answered by the functional
model."""

import struct

from ...base.config import load_config
from ...base.uart_proto import DRAM_BYTES, ERROR, Command
from ...sw.driver import DRAM_BASE, CsrBusError
from .device_model import DeviceModel

__all__ = ["ModelTransport"]

_COMMANDS = {int(c): c for c in Command}
_DECERR = 3     # the AXI response the register block gives an offset with no register


class ModelTransport:
    """The bridge protocol answered in Python by the functional model (``sim/device_model.py``):
    a transport for :class:`UartBackend` that needs neither a board nor RTL (``s4 fpga run
    --port model``). Its cycle counter counts 10 cycles per byte sent."""

    def __init__(self, config="tiny", dram_size=DRAM_BYTES):
        self.model = DeviceModel(load_config(config), DRAM_BASE, dram_size)
        self.inbox, self.outbox = bytearray(), bytearray()
        self.cycles = 0

    async def send(self, data):
        self.inbox += data
        while self.inbox:
            # an unknown command byte is a command of its own
            cmd = _COMMANDS.get(self.inbox[0])
            need = cmd.request_len if cmd else 1
            if cmd == Command.MEM_WRITE and len(self.inbox) >= need:
                need += struct.unpack_from("<H", self.inbox, need - 2)[0]
            if len(self.inbox) < need:
                return
            msg, self.inbox = bytes(self.inbox[:need]), self.inbox[need:]
            self.cycles += 10 * need
            m = self.model
            if cmd == Command.CSR_WRITE:
                try:
                    m.write32(*struct.unpack_from("<II", msg, 1))
                    resp = 0
                except CsrBusError:
                    resp = _DECERR
                self.outbox += struct.pack("<BB", cmd.reply, resp)
            elif cmd == Command.CSR_READ:
                try:
                    value, resp = m.read32(msg[1] | msg[2] << 8), 0
                except CsrBusError:
                    value, resp = 0, _DECERR
                self.outbox += struct.pack("<BBI", cmd.reply, resp, value)
            elif cmd == Command.MEM_WRITE:
                m.mem_write(struct.unpack_from("<I", msg, 1)[0], msg[cmd.request_len:])
                self.outbox += struct.pack("<BB", cmd.reply, 0)
            elif cmd == Command.MEM_READ:
                addr, n = struct.unpack_from("<IH", msg, 1)
                self.outbox += bytes([cmd.reply]) + m.mem_read(addr, n) + b"\x00"
            elif cmd == Command.STATUS:
                self.outbox += struct.pack("<BBQ", cmd.reply, int(m.irq), self.cycles)
            else:
                self.outbox += bytes([ERROR, msg[0]])

    async def recv(self, n):
        got, self.outbox = bytes(self.outbox[:n]), self.outbox[n:]
        return got
