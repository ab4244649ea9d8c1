"""The UART bridge's byte protocol answered by the functional model."""

import struct

from ...base.config import load_config
from ...sw.driver import DRAM_BASE
from ...sw.uart_backend import DRAM_BYTES
from .device_model import DeviceModel

__all__ = ["ModelTransport"]


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
            cmd, need = self.inbox[0], {1: 9, 2: 5, 3: 7, 4: 7, 5: 1}.get(self.inbox[0], 1)
            if cmd == 3 and len(self.inbox) >= 7:
                need += struct.unpack_from("<H", self.inbox, 5)[0]
            if len(self.inbox) < need:
                return
            msg, self.inbox = bytes(self.inbox[:need]), self.inbox[need:]
            self.cycles += 10 * need
            m = self.model
            if cmd == 1:
                m.write32(*struct.unpack_from("<II", msg, 1))
                self.outbox += b"\x81\x00"
            elif cmd == 2:
                self.outbox += struct.pack("<BBI", 0x82, 0, m.read32(msg[1] | msg[2] << 8))
            elif cmd == 3:
                m.mem_write(struct.unpack_from("<I", msg, 1)[0], msg[7:])
                self.outbox += b"\x83\x00"
            elif cmd == 4:
                addr, n = struct.unpack_from("<IH", msg, 1)
                self.outbox += b"\x84" + m.mem_read(addr, n) + b"\x00"
            elif cmd == 5:
                self.outbox += struct.pack("<BBQ", 0x85, int(m.irq), self.cycles)
            else:
                self.outbox += bytes([0xEE, cmd])

    async def recv(self, n):
        got, self.outbox = bytes(self.outbox[:n]), self.outbox[n:]
        return got
