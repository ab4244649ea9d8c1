"""The UART host bridge's byte protocol, the one definition both sides import: the gateware
(``s4accel.hw.fpga.uart``, which documents the protocol, and ``s4accel.hw.fpga.boards``), the
driver's backend (``s4accel.sw.uart_backend``) and the Python model of the bridge
(``s4accel.sim.model.uart_model``).

- :class:`Command`: the command bytes (host -> board), each with the length of its fixed part
  (``request_len``: the command byte and its arguments; a memory write's data bytes follow),
  of its arguments (``args``), of its reply (``reply_len``, without a memory read's data
  bytes) and its reply header byte (``reply``);
- :class:`Reply`: the reply header bytes (board -> host), the command byte | 0x80;
- :data:`ERROR`: the reply header to an unknown command byte, which the bridge follows with
  that byte;
- :data:`DRAM_BYTES`: the board's on-chip DRAM by default. The board decodes no base address
  (its RAM wraps at its size), so where the DRAM appears is the driver's choice
  (``s4accel.sw.driver.DRAM_BASE``), not part of the protocol.
"""

import enum

__all__ = ["Command", "Reply", "ERROR", "ERROR_REPLY_LEN", "MAX_ARGS", "DRAM_BYTES"]


class Reply(enum.IntEnum):
    """Reply header bytes (board -> host): the command byte | 0x80."""
    CSR_WRITE = 0x81
    CSR_READ = 0x82
    MEM_WRITE = 0x83
    MEM_READ = 0x84
    STATUS = 0x85


class Command(enum.IntEnum):
    """Command bytes (host -> board).

    ``args`` is the number of argument bytes after the command byte (a memory write's data
    not counted), ``request_len`` the command's fixed length (``1 + args``), ``reply_len`` the
    length of its reply (a memory read's data not counted) and ``reply`` its reply header.
    """

    def __new__(cls, code, args, reply_len):
        obj = int.__new__(cls, code)
        obj._value_ = code
        obj.args, obj.reply_len = args, reply_len
        return obj

    #: ``01 addr32 data32`` -> ``81 resp8``
    CSR_WRITE = 0x01, 8, 2
    #: ``02 addr32`` -> ``82 resp8 data32``
    CSR_READ = 0x02, 4, 6
    #: ``03 addr32 len16 data*len`` -> ``83 resp8``
    MEM_WRITE = 0x03, 6, 2
    #: ``04 addr32 len16`` -> ``84 data*len resp8``
    MEM_READ = 0x04, 6, 2
    #: ``05`` -> ``85 flags8 cycles64``
    STATUS = 0x05, 0, 10

    @property
    def request_len(self) -> int:
        return 1 + self.args

    @property
    def reply(self) -> Reply:
        return Reply(self | 0x80)


#: Reply header to an unknown command byte ``c``: the bridge answers ``EE c`` and is idle again.
ERROR = 0xEE
#: Length of that reply.
ERROR_REPLY_LEN = 2
#: The most argument bytes a command has (the bridge's argument register).
MAX_ARGS = max(c.args for c in Command)
#: Bytes of on-chip DRAM of the board (``s4accel.hw.fpga.boards.BoardTop``) by default.
DRAM_BYTES = 16 << 10
