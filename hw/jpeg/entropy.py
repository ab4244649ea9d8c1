"""JPEG entropy decoder: byte unstuffing, restart markers, Huffman decoding, DC prediction.

Decodes the entropy-coded segment of one baseline (T.81 sequential, Huffman) scan exactly as
:func:`s4accel.base.jpeg.decode` does, one Huffman symbol (code plus its extra bits) every three
cycles (MATCH, SYMBOL, SHIFT; :class:`EntropyDecoder`).

Huffman table form (written by the driver through ``i_table``; :func:`huffman_table_image`
builds it from a parsed DHT table): eight tables, DC slots 0..3 (table ids 0..3) and AC slots
0..3 (ids 4..7). Per table and code length ``L`` = 1..16 one entry ``LIMIT[L] | OFFSET[L] << 17``
where ``LIMIT[L]`` = MAXCODE[L] + 1 of T.81 F.2.2.3 (for a length without codes, the first
code it would have, MINCODE[L]) and ``OFFSET[L]`` = (VALPTR[L] - MINCODE[L]) mod 256; and the 256
symbols HUFFVAL in code order. The decoder compares the next L bits with LIMIT[L] for all 16
lengths at once: the lengths from the code's on are below their LIMIT (a canonical code's
LIMIT[L + 1] >= 2 LIMIT[L]), the shorter ones not, so the lowest such L is the code length, and
HUFFVAL[(bits + OFFSET[L]) mod 256] the symbol.
The symbols sit in four synchronously read memories (``8 x 256 x 8`` bits each, a block RAM
on an FPGA; one addressed for codes of 1 to 4 bits, one for 5 to 8, 9 to 12 and 13 to 16, each
holding every table's symbols, so that two multiplexer levels, not three or four, pick an
address), addressed at MATCH; a memory's write and read share one address, the write's while
``i_table`` is valid, so that they are one block RAM port with no logic added for a read and a
write of one address in the same cycle. The per-length entries are in 16 asynchronously read
ones (one per length, ``8 x (L + 8)`` bits each: LIMIT[L]'s L bits, a checked table's LIMIT[L]
being below 2**L, and OFFSET[L]; LUT RAM), read ahead into registers for the two tables the
next symbol may use, and the table in use's entries are registers too.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...base.jpeg import HuffmanTable, JpegTables

__all__ = [
    "MAX_BLOCKS",
    "EntropyDecoder",
    "EntropyError",
    "ItemKind",
    "Unstuffer",
    "byte_layout",
    "coef_layout",
    "huffman_table_image",
    "item_layout",
    "scan_config",
    "scan_config_layout",
    "table_write_layout",
]

#: Most blocks in one MCU (T.81 B.2.3).
MAX_BLOCKS = 10

byte_layout = data.StructLayout({"data": 8, "last": 1})


class ItemKind(enum.Enum, shape=2):
    """What the unstuffer found: a data byte, a restart marker or the end of the scan."""
    DATA = 0  #: an entropy-coded byte (a stuffed 0xFF00 gives 0xFF)
    RST = 1   #: RSTn; ``data`` is n
    END = 2   #: any other marker, or the end of the input (``last``) outside a marker


item_layout = data.StructLayout({"kind": ItemKind, "data": 8})

#: One decoded symbol: coefficient ``value`` at zig-zag index ``k`` of block ``slot`` of the
#: MCU (component ``comp``). DC values have the prediction applied. A ZRL symbol carries a 0 at
#: ``k`` = its run's last index, an EOB a 0 at ``k`` = 63; ``last`` marks a block's final item.
coef_layout = data.StructLayout({
    "comp": 2, "slot": 4, "k": 6, "value": signed(16), "last": 1,
})

#: A Huffman table write: ``table`` 0..3 DC, 4..7 AC; ``addr`` 0..255 a symbol, 256 + L - 1 the
#: entry of code length L (see the module docstring).
table_write_layout = data.StructLayout({"table": 3, "addr": 9, "data": 25})

#: Scan configuration, stable from ``start`` until ``done``: ``blocks`` per MCU (1..10), the
#: component of each block slot in MCU order, the DC / AC table slot of each component, the
#: restart interval in MCUs (0: none) and the scan's number of MCUs.
scan_config_layout = data.StructLayout({
    "blocks": 4,
    "comp": data.ArrayLayout(2, MAX_BLOCKS),
    "dc": data.ArrayLayout(2, 3),
    "ac": data.ArrayLayout(2, 3),
    "restart": 16,
    "mcus": 32,
})


class EntropyError(enum.Enum, shape=3):
    """Why a scan ended early; the decoder stops in that state until the next ``start``."""
    NONE = 0
    BAD_CODE = 1     #: bits that are no code of the table in use
    BAD_DC = 2       #: a DC difference category above 11
    BAD_RUN = 3      #: an AC run past coefficient 63
    TRUNCATED = 4    #: the scan's data ended (marker or ``last``) inside an MCU
    BAD_RST = 5      #: RSTn out of sequence, or a restart marker with no restart interval
    MISSING_RST = 6  #: another marker where a restart interval's RSTn was due


def huffman_table_image(table: HuffmanTable, table_id: int) -> list[tuple[int, int, int]]:
    """The ``(table, addr, data)`` writes that program `table` (a parsed DHT table) as
    ``table_id`` (0..3 DC slots, 4..7 AC slots); see the module docstring for the form."""
    if not 0 <= table_id < 8:
        raise ValueError(f"table_id must be 0..7, not {table_id}")
    writes = [(table_id, a, s) for a, s in enumerate(table.symbols)]
    code = 0
    k = 0
    for length, n in enumerate(table.counts, start=1):
        # a length without codes gets the first code it would have: the hits (the next L bits
        # below LIMIT[L]) are then the same for every length from the code's on
        limit, offset = code + n, (k - code) % 256 if n else 0
        writes.append((table_id, 256 + length - 1, limit | offset << 17))
        code = (code + n) << 1
        k += n
    return writes


def scan_config(tables: JpegTables, si: int = 0) -> dict:
    """The ``config`` value (a dict for ``scan_config_layout``) of scan `si`, with table ids as
    programmed by :func:`huffman_table_image` (DC slot d -> d, AC slot a -> 4 + a)."""
    scan = tables.scans[si]
    comps = [tables.components[c] for c in scan.components]
    if len(comps) == 1:
        c = comps[0]
        cw = -(-tables.width * c.h // tables.hmax)
        ch = -(-tables.height * c.v // tables.vmax)
        mcus = -(-cw // 8) * -(-ch // 8)
        slots = [scan.components[0]]
    else:
        mcus = -(-tables.width // (8 * tables.hmax)) * -(-tables.height // (8 * tables.vmax))
        slots = [ci for ci, c in zip(scan.components, comps, strict=True)
                 for _ in range(c.h * c.v)]
    dc = [0, 0, 0]
    ac = [0, 0, 0]
    for ci, d, a in zip(scan.components, scan.dc_tables, scan.ac_tables, strict=True):
        dc[ci], ac[ci] = d, a
    return {"blocks": len(slots), "comp": slots + [0] * (MAX_BLOCKS - len(slots)),
            "dc": dc, "ac": ac, "restart": scan.restart_interval, "mcus": mcus}


class Unstuffer(wiring.Component):
    """Bytes of an entropy-coded segment in, items out: data bytes with 0xFF00 unstuffed, RSTn
    markers, and END for any other marker or for input that ends (``last``) where no marker is.

    Fill bytes (0xFF 0xFF) are skipped as libjpeg does. At most one item per cycle; one input
    byte per cycle except the cycle an END after a ``last`` data byte is sent. ``clear``
    forgets a pending 0xFF and the output item.

    Members
    -------
    i : In(stream.Signature(byte_layout))
    o : Out(stream.Signature(item_layout))
    clear : In(1)
    """

    i: In(stream.Signature(byte_layout))
    o: Out(stream.Signature(item_layout))
    clear: In(1)

    def elaborate(self, platform):
        m = Module()
        ff = Signal()        # the previous byte was 0xFF
        pend_end = Signal()  # the last byte was data: an END item follows
        run = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(run & ~pend_end)
        b, last = self.i.payload.data, self.i.payload.last

        def emit(kind, value=0):
            return [self.o.valid.eq(1), self.o.payload.kind.eq(kind), self.o.payload.data.eq(value)]

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(run):
            with m.If(pend_end):
                m.d.sync += [*emit(ItemKind.END), pend_end.eq(0)]
            with m.Elif(self.i.valid):
                with m.If(ff):
                    with m.If(b == 0x00):
                        m.d.sync += [*emit(ItemKind.DATA, 0xFF), ff.eq(0), pend_end.eq(last)]
                    with m.Elif(b == 0xFF):
                        with m.If(last):
                            m.d.sync += [*emit(ItemKind.END), ff.eq(0)]
                    with m.Elif(b[3:] == 0xD0 >> 3):
                        m.d.sync += [*emit(ItemKind.RST, b[:3]), ff.eq(0), pend_end.eq(last)]
                    with m.Else():
                        m.d.sync += [*emit(ItemKind.END), ff.eq(0)]
                with m.Elif(b == 0xFF):
                    with m.If(last):
                        m.d.sync += emit(ItemKind.END)
                    with m.Else():
                        m.d.sync += ff.eq(1)
                with m.Else():
                    m.d.sync += [*emit(ItemKind.DATA, b), pend_end.eq(last)]
        with m.If(self.clear):
            m.d.sync += [ff.eq(0), pend_end.eq(0), self.o.valid.eq(0)]
        return m


def _thermometer_select(hits, values, lo=0, hi=None, force=None):
    """``values[L - 1]`` for the lowest ``L`` with ``hits[L - 1]`` set, where ``hits`` is a
    thermometer code (every bit above a set one set too): a balanced tree of 2:1 multiplexers,
    ``hits[mid - 1]`` choosing between the halves. Where no bit is set it gives the last
    value. ``force`` (a signal, optional): when set, the first value."""
    hi = len(values) if hi is None else hi
    if hi - lo == 1:
        return values[lo]
    mid = (lo + hi) // 2
    sel = hits[mid - 1] if force is None or lo else hits[mid - 1] | force
    return Mux(sel, _thermometer_select(hits, values, lo, mid, force),
               _thermometer_select(hits, values, mid, hi, force))


#: Block RAMs of symbols, one per bank of 16 / _SYM_BANKS code lengths (see the module
#: docstring): fewer multiplexer levels between the compares and a block RAM's address
_SYM_BANKS = 4
#: Groups of banks whose symbols SYMBOL registers (the bank picked by a hit registered at
#: MATCH, one 2:1 multiplexer after the block RAMs): SHIFT picks among the groups
_SYM_GROUPS = 2

# bits in the decoder's bit buffer: a symbol uses at most 16 + 15 bits, and a byte is taken
# whenever 8 fit in two of a symbol's three cycles
_BUF = 64


class EntropyDecoder(wiring.Component):
    """Huffman decoder of one scan: entropy-coded bytes in, one item per symbol out.

    ``start`` (a pulse) begins a scan with the prediction, restart count and bit buffer
    cleared; the decoder then reads bytes from ``i_data`` up to and including the marker (or
    ``last`` byte) that ends the scan, and emits one ``o_coef`` item per Huffman symbol in scan
    order (DC with prediction applied; see ``coef_layout``). After each ``config.restart`` MCUs
    (when more follow) it drops the bits left in its buffer and any bytes up to the next marker,
    which must be the next RSTn in sequence; the prediction restarts at 0. RST markers after the
    last MCU are checked for sequence and skipped, as the golden decoder does.

    ``done`` rises when the scan's marker has been read; ``error`` (sticky until ``start``)
    when the data is corrupt, and the decoder then stops reading. Either happens within a
    number of cycles bounded by the input length: every symbol takes at least one bit, and
    once the data has ended no bit is read without raising TRUNCATED. ``busy`` is high from
    ``start`` to ``done`` or ``error``. Tables (``i_table``, always ready) may be written only
    while not busy. ``drained``: ``done`` and the scan's last item taken from ``o_coef`` (so
    the IDCT reads no more of the scan's quantizers).

    Members
    -------
    i_data : In(stream.Signature(byte_layout))
    i_table : In(stream.Signature(table_write_layout))
    o_coef : Out(stream.Signature(coef_layout))
    config : In(scan_config_layout)
    start : In(1)
    busy, done, drained : Out(1)
    error : Out(EntropyError)
    """

    i_data: In(stream.Signature(byte_layout))
    i_table: In(stream.Signature(table_write_layout))
    o_coef: Out(stream.Signature(coef_layout))
    config: In(scan_config_layout)
    start: In(1)
    busy: Out(1)
    done: Out(1)
    drained: Out(1)
    error: Out(EntropyError)

    def elaborate(self, platform):
        m = Module()
        W = _BUF
        cfg = self.config
        m.submodules.unstuff = unstuff = Unstuffer()
        # a skid register before it: ``i_data.ready`` is a flip-flop's (the decision to take
        # a byte, from the decoder's state, ends here instead of running back through the
        # DMA's word unpacker). A byte passes straight through while the unstuffer takes it;
        # one it does not take waits in the register, and ``start`` drops it.
        skid_v = Signal()
        skid = Signal(byte_layout)
        m.d.comb += [self.i_data.ready.eq(~skid_v),
                     unstuff.i.valid.eq(self.i_data.valid | skid_v),
                     unstuff.i.payload.eq(Mux(skid_v, skid, self.i_data.payload))]
        with m.If(skid_v):
            with m.If(unstuff.i.ready):
                m.d.sync += skid_v.eq(0)
        with m.Elif(self.i_data.valid & ~unstuff.i.ready):
            m.d.sync += [skid_v.eq(1), skid.eq(self.i_data.payload)]
        with m.If(self.start):
            m.d.sync += skid_v.eq(0)
        item = unstuff.o

        # ---- tables
        # the symbols, once per group of code lengths (``_SYM_BANKS`` block RAMs, each
        # holding every table's 256 symbols): read at MATCH, data at SYMBOL
        sym_rds, sym_wrs = [], []
        for g in range(_SYM_BANKS):
            mem = Memory(shape=8, depth=8 * 256, init=[])
            m.submodules[f"symbols{g}"] = mem
            sym_rds.append(mem.read_port())
            sym_wrs.append(mem.write_port())
        # the per-length entries: one small memory per code length (LUT RAM on an FPGA),
        # word ``t`` table t's entry, all 16 read at once for the table in use
        tw = self.i_table.payload
        # one address for the write and the read (tables are written only while not busy):
        # one port of the block RAM, where two ports would get logic (a synthesizer's) for a
        # read and a write of the same address in one cycle, on the read address's path
        m.d.comb += self.i_table.ready.eq(1)
        for wr in sym_wrs:
            m.d.comb += [wr.data.eq(tw.data[:8]), wr.en.eq(self.i_table.valid & ~tw.addr[8])]
        # (stored as LIMIT[L]'s L bits, a checked table's LIMIT[L] being below 2**L, then
        # OFFSET[L]'s 8); two read ports: this block's AC table and the next block's DC table
        entry_ac, entry_dc = [], []
        for n in range(16):
            mem = Memory(shape=n + 9, depth=8, init=[])
            m.submodules[f"entries_len{n + 1}"] = mem
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(tw.table), wr.data.eq(Cat(tw.data[:n + 1], tw.data[17:25])),
                         wr.en.eq(self.i_table.valid & tw.addr[8] & (tw.addr[:8] == n))]
            entry_ac.append(mem.read_port(domain="comb"))
            entry_dc.append(mem.read_port(domain="comb"))

        # ---- state
        class State(enum.Enum, shape=3):
            IDLE = 0
            DECODE = 1
            RESTART = 2
            DRAIN = 3
            DONE = 4
            ERROR = 5
        state = Signal(State)
        buf = Signal(W)          # the next bit is buf[W - 1]; bits below nbits are 0
        nbits = Signal(range(W + 1))
        k = Signal(range(65))    # next coefficient (zig-zag index) of the current block
        slot = Signal(range(MAX_BLOCKS))
        mcu = Signal(32)
        ri_count = Signal(16)
        expect = Signal(3)       # next RSTn
        pred = Array(Signal(signed(16), name=f"pred{c}") for c in range(3))
        err = Signal(EntropyError)
        m.d.comb += [self.busy.eq((state == State.DECODE) | (state == State.RESTART)
                                  | (state == State.DRAIN)),
                     self.done.eq(state == State.DONE), self.error.eq(err),
                     unstuff.clear.eq(self.start)]

        # ---- one symbol in three cycles (``phase``): MATCH finds the code's length and the
        # symbol's index from the 16 bits at the buffer's top (the table in use, ``tbl``, a
        # register); SYMBOL reads the symbol and the 16 bits after the code; SHIFT checks
        # and emits it and shifts the buffer. Bytes join the buffer below its bits in the
        # first two (its top bits do not change), so the match stands if the code was inside
        # the bits there were at MATCH (``m_nbits``); otherwise MATCH again.
        class Phase(enum.Enum, shape=2):
            MATCH = 0
            SYMBOL = 1
            SHIFT = 2
        phase = Signal(Phase)
        comp = Signal(2)
        m.d.comb += comp.eq(cfg.comp[slot])
        is_dc = k == 0
        tbl = Signal(3)
        # the buffer's top 16 bits, for the compares and the indices: a private copy
        # (fewer loads on each flip-flop), kept with every change of ``buf``; a byte joins
        # it as it joins ``buf``, but ORed into the copy itself, so that synthesis does
        # not merge it with ``buf``'s flip-flops
        peek = Signal(16)
        # and a second copy for the 16 index adders (kept: the compares' copy drives only
        # the compares)
        peek_i = Signal(16, attrs={"keep": 1})
        code_len = Signal(5)
        matched = Signal()
        # the table in use and its 16 entries, registers loaded together (``tbl_load`` when
        # ``tbl_we``): the entries are read when the table is chosen, so MATCH starts from
        # flip-flops instead of the entry memories' read
        tbl_load = Signal(3)
        tbl_we = Signal()
        ent = [Signal(n + 9, name=f"ent{n + 1}") for n in range(16)]
        # both tables a SHIFT may choose are read ahead into registers (every cycle, from
        # ``tbl_ac`` / ``tbl_dc_next``, which follow a slot's change one cycle later, so they
        # hold the right entries at the next SHIFT, three cycles on); at ``start`` the DC
        # port reads the first block's table
        out_last = Signal()      # the symbol at SHIFT ends its block
        ent_ac = [Signal(n + 9, name=f"ent_ac{n + 1}") for n in range(16)]
        ent_dc = [Signal(n + 9, name=f"ent_dc{n + 1}") for n in range(16)]
        tbl_ac = Signal(3)
        tbl_dc_next = Signal(3)
        tbl_first = Cat(cfg.dc[cfg.comp[0]], Const(0, 1))
        for rd_a, rd_d, e_a, e_d in zip(entry_ac, entry_dc, ent_ac, ent_dc, strict=True):
            m.d.comb += [rd_a.addr.eq(tbl_ac),
                         rd_d.addr.eq(Mux(self.start, tbl_first, tbl_dc_next))]
            m.d.sync += [e_a.eq(rd_a.data), e_d.eq(rd_d.data)]
        with m.If(tbl_we):
            m.d.sync += [tbl.eq(tbl_load),
                         *(e.eq(Mux(self.start, rd.data, Mux(out_last, e_d, e_a)))
                           for e, rd, e_d, e_a in zip(ent, entry_dc, ent_dc, ent_ac,
                                                                            strict=True))]
        # every length at once: hits[n - 1] when the next n bits are below LIMIT[n] (an
        # n-bit compare: a checked table's LIMIT[n] is below 2**n). Those are the lengths
        # from the code's on (the table form: a thermometer code), so the code's length is
        # the lowest hit, and a binary tree of 2:1 multiplexers whose selects are hits
        # themselves picks its index and length (``_thermometer_select``: no priority
        # encoding before it). Each symbol memory is addressed by the tree of its group of
        # lengths (three or two levels, not four), and SYMBOL picks the group's data by the
        # hits registered at MATCH. A table write takes the index's place: its ``valid``
        # forces every tree to its first leaf, where the write's address waits
        hits = Signal(16)
        m.d.comb += hits.eq(Cat(*(peek[16 - n:] < ent[n - 1][:n] for n in range(1, 17))))
        m.d.comb += [matched.eq(hits != 0),
                     code_len.eq(_thermometer_select(hits, [Const(n, 5)
                                                            for n in range(1, 17)]))]
        wv = self.i_table.valid
        idx = [(peek_i[16 - n:] + ent[n - 1][n:])[:8] for n in range(1, 17)]
        per = 16 // _SYM_BANKS
        for g, rd in enumerate(sym_rds):
            lens = slice(g * per, (g + 1) * per)
            leaves = idx[lens]
            leaves[0] = Mux(wv, tw.addr[:8], leaves[0])
            addr = Signal(8, name=f"sym_addr{g}")
            m.d.comb += addr.eq(_thermometer_select(hits[lens], leaves, force=wv))
            m.d.comb += [sym_wrs[g].addr.eq(Cat(addr, Mux(wv, tw.table, tbl))),
                         rd.addr.eq(sym_wrs[g].addr),
                         rd.en.eq((state == State.DECODE) & (phase == Phase.MATCH))]
        # which bank holds the code (the hits at each bank's last length, at MATCH)
        m_bank_hits = Signal(_SYM_BANKS)
        m_len = Signal(5)
        # a private copy for the extra bits' verdict (``m_len`` drives the buffer's shift),
        # kept inverted: yosys merges flip-flops with the same inputs, "keep" or not
        m_len_fn = Signal(5, init=31)
        m_len_f = Signal(5)
        m.d.comb += m_len_f.eq(~m_len_fn)
        m_matched = Signal()
        m_nbits = Signal(range(W + 1))
        with m.If(phase == Phase.MATCH):
            m.d.sync += [m_len.eq(code_len), m_len_fn.eq(~code_len), m_matched.eq(matched),
                         m_nbits.eq(nbits)]
        m.d.sync += m_bank_hits.eq(Mux(phase == Phase.MATCH,
                                       Cat(*(hits[(g + 1) * per - 1]
                                             for g in range(_SYM_BANKS))), m_bank_hits))
        # every group's symbol is registered at SYMBOL (its banks' data picked by the
        # registered hits: the block RAMs' slow output, 5.6 ns after the clock on an ECP5,
        # has one 2:1 multiplexer level a bank pair behind it), then SHIFT picks the group
        bpg = _SYM_BANKS // _SYM_GROUPS
        g_sym = [Signal(8, name=f"sym{g}") for g in range(_SYM_GROUPS)]
        s_group_hits = Signal(_SYM_GROUPS)
        sym = Signal(8)
        m.d.comb += sym.eq(_thermometer_select(s_group_hits, g_sym))
        # (loaded every cycle: the memories' outputs and the hits change only at MATCH, so
        # they hold at SHIFT what SYMBOL loaded)
        m.d.sync += [s_group_hits.eq(Cat(*(m_bank_hits[(g + 1) * bpg - 1]
                                           for g in range(_SYM_GROUPS)))),
                     *(r.eq(_thermometer_select(m_bank_hits[g * bpg:(g + 1) * bpg],
                                                [rd.data for rd in
                                                 sym_rds[g * bpg:(g + 1) * bpg]]))
                       for g, r in enumerate(g_sym))]
        # k's tests as registers: ``k`` changes only at a SHIFT that goes (or at ``start``),
        # and is tested at the next SHIFT, two cycles later at least, so a register one
        # cycle behind ``k`` holds the same verdict there (the block end and the run checks
        # then start from flip-flops)
        k_nz, k_48, k_gt48 = Signal(), Signal(), Signal()
        m.d.sync += [k_nz.eq(k != 0), k_48.eq(k == 48), k_gt48.eq(k[:6] > 48)]
        # the AC run check as a register too: bit ``v`` says whether a run of ``v`` zeros
        # from ``k`` passes coefficient 63 (``k + v > 63``: ``k >= 48`` and ``v > ~k[:4]``),
        # so a group's verdict is its run's bit, picked as ``fits`` is, with no compare
        run_bad = Signal(16)
        m.d.sync += run_bad.eq(Cat(*((k[4:6] == 3) & (v > ~k[:4]) for v in range(16))))
        # whether each group's symbol ends the block, from its register and ``k`` (equality
        # tests, no adder), then picked by the group: the block's end chooses the next
        # table's 16 entries and moves the slot
        def ends_block(s):
            size, run = s[:4], s[4:8]
            return k_nz & Mux(size == 0, Mux(run == 15, k_48, 1), run == ~k[:6])
        m.d.comb += out_last.eq(_thermometer_select(s_group_hits,
                                                    [ends_block(r) for r in g_sym]))
        ext16 = Signal(16)       # the 16 bits after the code ...
        # ... whether they are all in the buffer (``fits``) and whether the code itself was
        # inside the bits at MATCH: registers, so that SHIFT's decision (``go``, loading half
        # the decoder's flip-flops) has no adder or compare. The extra bits' verdict is
        # registered for each of the 16 counts they may have (from the bits left, without
        # the block RAMs, whose data feed only registers) and SHIFT picks it by the
        # registered symbol's count
        fits_by_size = Signal(16)
        sym_ok = Signal()
        # (the bits after the code, used at SYMBOL only: not gated by the phase; the
        # verdict has its own copy, from ``m_len_f``: ``left`` places a joining byte in
        # ``bufm``, 64 multiplexers)
        left = Signal(range(-32, W + 1))
        left_f = Signal(range(-32, W + 1), attrs={"keep": 1})
        code_in = Signal()
        m.d.comb += [left.eq(nbits - m_len), left_f.eq(nbits - m_len_f),
                     code_in.eq(m_matched & (m_len_f <= m_nbits))]
        with m.If(phase == Phase.SYMBOL):
            m.d.sync += [
                fits_by_size.eq(Cat(*(code_in & ((left_f >= 16) | (c <= left_f[:4]))
                                      for c in range(16)))),
                sym_ok.eq(code_in),
                ext16.eq(Array(buf[W - 16 - n:W - n] for n in range(17))[m_len])]
        size = sym[:4]
        run = sym[4:]
        raw = Signal(16)
        m.d.comb += raw.eq(ext16 >> (16 - size).as_unsigned()[:5])

        zrl = ~is_dc & (size == 0) & (run == 15)
        eob = ~is_dc & (size == 0) & (run != 15)
        k_run = k + run
        out_k = Signal(6)
        next_k = Signal(range(65))
        bad = Signal()
        bad_code = Signal(EntropyError)
        # (k is 1..63 for an AC symbol: k + 16 > 64 is k > 48, and k + run against 63 is
        # run against 63 - k = ~k, without the adders)
        with m.If(is_dc):
            m.d.comb += [out_k.eq(0), next_k.eq(1), bad_code.eq(EntropyError.BAD_DC)]
        with m.Elif(zrl):
            m.d.comb += [out_k.eq(k + 15), next_k.eq(k + 16), bad_code.eq(EntropyError.BAD_RUN)]
        with m.Elif(eob):
            m.d.comb += out_k.eq(63)
        with m.Else():
            m.d.comb += [out_k.eq(k_run), next_k.eq(k_run + 1),
                         bad_code.eq(EntropyError.BAD_RUN)]

        # whether each group's symbol is bad, from its register and ``k``'s (``k`` = 0 a DC
        # size over 11; a ZRL from k > 48; an EOB never; else the run's bit), then picked by
        # the group, as the block end is: no compare after the pick
        def bad_of(r):
            size_r, run_r = r[:4], r[4:8]
            return Mux(~k_nz, r > 11,
                       Mux(size_r == 0, (run_r == 15) & k_gt48, run_bad.bit_select(run_r, 1)))
        m.d.comb += bad.eq(_thermometer_select(s_group_hits, [bad_of(r) for r in g_sym]))

        # ---- the items' pipeline: the symbol's fields (``x``), then the coefficient: EXTEND
        # (T.81 F.2.2.1: a leading 0 bit means a negative value) and the DC prediction
        x_valid = Signal()
        x = Signal(data.StructLayout({"comp": 2, "slot": 4, "k": 6, "last": 1, "dc": 1,
                                      "size": 4, "raw": 16}))
        # (two stages: EXTEND into ``y``, then the prediction's adder)
        y_valid = Signal()
        y = Signal(data.StructLayout({"comp": 2, "slot": 4, "k": 6, "last": 1, "dc": 1,
                                      "diff": signed(17)}))
        out_free = ~self.o_coef.valid | self.o_coef.ready
        y_free = ~y_valid | out_free
        # a symbol is emitted while one of the three registers is empty, the output's
        # ``ready`` left out (it comes from the IDCT's state: the emit decision loads half the
        # decoder's flip-flops and must start from flip-flops), so an item waits for the one
        # three before to have been taken a cycle earlier
        x_free = ~x_valid | ~y_valid | ~self.o_coef.valid
        m.d.comb += self.drained.eq(self.done & ~x_valid & ~y_valid & ~self.o_coef.valid)
        raw_s = Cat(x.raw, Const(0, 1)).as_signed()
        diff = Signal(signed(17))
        m.d.comb += diff.eq(Mux(x.size == 0, 0,
                                Mux((x.raw >> (x.size - 1).as_unsigned()[:4])[0], raw_s,
                                    raw_s - ((Const(1, 17) << x.size) - 1))))
        with m.If(self.o_coef.ready):
            m.d.sync += self.o_coef.valid.eq(0)
        with m.If(y_valid & out_free):
            p = self.o_coef.payload
            value = Mux(y.dc, pred[y.comp] + y.diff, y.diff)
            m.d.sync += [self.o_coef.valid.eq(1), p.comp.eq(y.comp), p.slot.eq(y.slot),
                         p.k.eq(y.k), p.value.eq(value), p.last.eq(y.last), y_valid.eq(0)]
            with m.If(y.dc):
                m.d.sync += pred[y.comp].eq(value)
        with m.If(x_valid & y_free):
            m.d.sync += [y_valid.eq(1), y.comp.eq(x.comp), y.slot.eq(x.slot), y.k.eq(x.k),
                         y.last.eq(x.last), y.dc.eq(x.dc), y.diff.eq(diff), x_valid.eq(0)]

        # the scan's data has ended when a marker is next: read zeros, but none may be used
        data_item = item.valid & (item.payload.kind == ItemKind.DATA)
        marker = item.valid & (item.payload.kind != ItemKind.DATA)
        in_shift = (state == State.DECODE) & (phase == Phase.SHIFT)
        fits = _thermometer_select(s_group_hits, [fits_by_size.bit_select(r[:4], 1)
                                                  for r in g_sym])
        go = Signal()
        # (a bad symbol goes too, but its item is not valid and the decoder stops at it: the
        # loads ``go`` enables do not wait on the symbol's checks)
        m.d.comb += go.eq(in_shift & fits & x_free)

        # ---- bit buffer: a byte joins below the bits whenever it fits, except at SHIFT
        take_byte = Signal()
        m.d.comb += take_byte.eq(data_item & (nbits <= W - 8) & ~in_shift
                                 & ((state == State.DECODE) | (state == State.RESTART)
                                    | (state == State.DRAIN)))
        placed = (Cat(Const(0, W - 8), item.payload.data) >> nbits)[:W]
        # the bits SHIFT will have after the code (``nbits - m_len``, with the byte joining at
        # SYMBOL: SHIFT takes none), registered at SYMBOL, so SHIFT's new ``nbits`` is this
        # less the symbol's extra bits (no adder behind the block RAMs' data)
        nl = Signal(range(-32, W + 9))
        # (at SYMBOL, which happens in DECODE only, ``take_byte`` is ``sym_take``: without the
        # state and phase terms, so the 64 ``bufm`` bits do not wait on the state's decode)
        sym_take = Signal()
        m.d.comb += sym_take.eq(data_item & (nbits <= W - 8))
        with m.If(phase == Phase.SYMBOL):
            m.d.sync += nl.eq(Mux(sym_take, left + 8, left))
        # the shift by the symbol's bits in two steps: by the code's length at SYMBOL, into
        # ``bufm`` (a byte joining then is placed there already shifted), by the extra bits'
        # count (at most 15) at SHIFT, so SHIFT's shift has four select bits, not six. (SHIFT
        # takes no byte, so the buffer then is the one SYMBOL saw; where the code was not in
        # the bits, ``left`` is negative, ``bufm`` meaningless and SHIFT does not shift.)
        bufm = Signal(W)
        with m.If(phase == Phase.SYMBOL):
            m.d.sync += bufm.eq((buf << m_len)[:W]
                                | Mux(sym_take, (Cat(Const(0, W - 8), item.payload.data)
                                                  >> left.as_unsigned()[:7])[:W], 0))
        shifted = Signal(W)
        m.d.comb += shifted.eq((bufm << size)[:W])
        with m.If(take_byte):
            m.d.sync += [buf.eq(buf | placed), nbits.eq(nbits + 8),
                         peek.eq(peek | placed[W - 16:]), peek_i.eq(peek_i | placed[W - 16:])]
        with m.Elif(go):
            m.d.sync += [buf.eq(shifted), nbits.eq(nl - size),
                         peek.eq(shifted[W - 16:]), peek_i.eq(shifted[W - 16:])]
        take_marker = Signal()
        m.d.comb += item.ready.eq(take_byte | take_marker)

        def fail(code):
            return [state.eq(State.ERROR), err.eq(code)]

        # the next symbol's table: this block's AC table, or the next block's DC table
        # (registers, from the slot and the configuration: a slot changes at a SHIFT, and they
        # are used at the next SHIFT, at least two cycles later)
        next_slot = Mux(slot == cfg.blocks - 1, 0, slot + 1)
        m.d.sync += [tbl_ac.eq(Cat(cfg.ac[comp], Const(1, 1))),
                     tbl_dc_next.eq(Cat(cfg.dc[cfg.comp[next_slot]], Const(0, 1)))]
        m.d.comb += tbl_load.eq(Mux(self.start, tbl_first,
                                    Mux(out_last, tbl_dc_next, tbl_ac)))

        rst_ok = ((item.payload.kind == ItemKind.RST) & (item.payload.data[:3] == expect)
                  & (cfg.restart != 0))
        # the MCU's last block, the scan's last MCU, the interval's last MCU: registers from
        # this cycle's counters (they change at a SHIFT or in RESTART, and are used at the
        # next SHIFT, at least two cycles later), so the block end's enables start from them
        slot_last, mcu_last, ri_last = Signal(), Signal(), Signal()
        m.d.sync += [slot_last.eq(slot == cfg.blocks - 1), mcu_last.eq(mcu + 1 == cfg.mcus),
                     ri_last.eq(ri_count + 1 == cfg.restart)]
        # the MCU and interval counters move the cycle after the MCU's last block goes
        # (``mcu_step``, a register), not at that SHIFT: ``go`` then reaches 48 fewer
        # flip-flops. Their "last" registers above are still in time for the next SHIFT,
        # three cycles after a go at least; a restart marker's ``ri_count`` reset, later in
        # this code, wins over the step in the same cycle, as it came after it before
        mcu_step = Signal()
        m.d.sync += mcu_step.eq(0)
        with m.If(mcu_step):
            m.d.sync += [mcu.eq(mcu + 1), ri_count.eq(ri_count + 1)]
        with m.If(go):
            m.d.sync += [x_valid.eq(~bad), x.comp.eq(comp), x.slot.eq(slot),
                         x.k.eq(out_k), x.last.eq(out_last), x.dc.eq(is_dc), x.size.eq(size),
                         x.raw.eq(raw), k.eq(next_k), phase.eq(Phase.MATCH)]
            m.d.comb += tbl_we.eq(1)
            with m.If(out_last):
                m.d.sync += k.eq(0)
                with m.If(slot_last):
                    m.d.sync += [slot.eq(0), mcu_step.eq(1)]
                    with m.If(mcu_last):
                        m.d.sync += state.eq(State.DRAIN)
                    with m.Elif(ri_last):
                        m.d.sync += state.eq(State.RESTART)
                with m.Else():
                    m.d.sync += slot.eq(slot + 1)
        with m.Switch(state):
            with m.Case(State.DECODE):
                with m.Switch(phase):
                    with m.Case(Phase.MATCH):
                        m.d.sync += phase.eq(Phase.SYMBOL)
                    with m.Case(Phase.SYMBOL):
                        m.d.sync += phase.eq(Phase.SHIFT)
                    with m.Case(Phase.SHIFT):
                        # (a decision the old one-cycle loop took with the same bits: the
                        # match saw every bit there is when no byte joined since MATCH)
                        saw_all = m_nbits == nbits
                        with m.If(sym_ok & bad):
                            m.d.sync += fail(bad_code)
                        with m.Elif(go):
                            pass                # (the symbol's loads: above)
                        with m.Elif(saw_all & marker & ~fits):
                            m.d.sync += fail(Mux(m_matched, EntropyError.TRUNCATED,
                                                 EntropyError.BAD_CODE))
                        with m.Elif(saw_all & ~m_matched & (nbits >= 16)):
                            m.d.sync += fail(EntropyError.BAD_CODE)
                        with m.Elif(~(fits & ~bad)):
                            m.d.sync += phase.eq(Phase.MATCH)     # more bits: match again
            with m.Case(State.RESTART):
                # the interval's padding bits and any stray bytes before its marker are dropped
                m.d.sync += [buf.eq(0), peek.eq(0), peek_i.eq(0), nbits.eq(0),
                             phase.eq(Phase.MATCH)]
                with m.If(marker):
                    m.d.comb += take_marker.eq(1)
                    with m.If(rst_ok):
                        m.d.sync += [state.eq(State.DECODE), expect.eq(expect + 1),
                                     ri_count.eq(0), *(p.eq(0) for p in pred)]
                    with m.Elif(item.payload.kind == ItemKind.RST):
                        m.d.sync += fail(EntropyError.BAD_RST)
                    with m.Else():
                        m.d.sync += fail(EntropyError.MISSING_RST)
            with m.Case(State.DRAIN):
                m.d.sync += [buf.eq(0), peek.eq(0), peek_i.eq(0), nbits.eq(0)]
                with m.If(marker):
                    m.d.comb += take_marker.eq(1)
                    with m.If(item.payload.kind == ItemKind.END):
                        m.d.sync += state.eq(State.DONE)
                    with m.Elif(rst_ok):
                        m.d.sync += expect.eq(expect + 1)
                    with m.Else():
                        m.d.sync += fail(EntropyError.BAD_RST)

        with m.If(self.start):
            m.d.sync += [state.eq(Mux(cfg.mcus == 0, State.DRAIN, State.DECODE)),
                         err.eq(EntropyError.NONE), buf.eq(0), peek.eq(0), peek_i.eq(0),
                         nbits.eq(0), k.eq(0),
                         slot.eq(0), mcu.eq(0), ri_count.eq(0), mcu_step.eq(0), expect.eq(0),
                         self.o_coef.valid.eq(0), x_valid.eq(0), y_valid.eq(0),
                         phase.eq(Phase.MATCH),
                         *(p.eq(0) for p in pred)]
            m.d.comb += tbl_we.eq(1)
        return m
