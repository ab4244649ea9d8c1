"""Descriptor layouts, shared by the command processor and the driver (one bit layout).

A descriptor is 32 bytes (256 bits, little-endian) in a ring in DRAM. The first 32 bits are a
:class:`Header`; the rest is a :class:`Body` whose meaning depends on the opcode::

    bits 0..3    opcode              (Opcode; other values fail with UNKNOWN_OPCODE)
    bit  4       wait_prev           wait for a token from the previous stage
    bit  5       wait_next           wait for a token from the next stage
    bit  6       sig_prev            give a token to the previous stage when done
    bit  7       sig_next            give a token to the next stage when done
    bits 32..255 body                DmaBody (LOAD, STORE), GemmBody (GEMM), VopBody (VOP) or
                                     DecodeBody (DECODE, on the LOAD stage)

Stages are LOAD -> GEMM -> STORE (VTA's dependency queues; a VOP runs on the GEMM stage, a
DECODE on the LOAD stage): a LOAD's "next" is GEMM, a GEMM's "prev" is LOAD and "next" STORE,
a STORE's "prev" is GEMM. A token is a counting semaphore between two adjacent stages, so the
next tile's LOAD and the previous tile's STORE run while the current GEMM computes, and
buffers are reused only after their consumer is done.
"""

import functools

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import data, enum

__all__ = ["Opcode", "Target", "LoadFormat", "ErrorCode", "Header", "DmaBody", "GemmBody",
           "VopOp", "VopBody", "DecodeBody", "Body", "Descriptor", "DESC_BYTES", "TOKENS",
           "token_use", "vop_words", "vop_in_words", "vop_par_words",
           "ex_cmd_layout", "DescFields", "decode_descriptor", "encode_descriptor"]

DESC_BYTES = 32


class Opcode(enum.Enum, shape=4):
    NOP = 0
    LOAD = 1       #: DRAM -> scratchpad (2-D strided)
    STORE = 2      #: output scratchpad -> DRAM (2-D strided)
    GEMM = 3       #: a block of tensor-core tiles
    SYNC = 4       #: wait until every stage is idle
    COMPLETE = 5   #: SYNC, then raise the "done" interrupt
    VOP = 6        #: a vector operation on the activation scratchpad (GEMM stage)
    DECODE = 7     #: JPEG bitstream in DRAM -> int8 image in the ACT scratchpad (LOAD stage)


class Target(enum.Enum, shape=2):
    """Scratchpad a LOAD writes."""
    ACT = 0   #: activation windows, one word = rows x 32 bytes
    WGT = 1   #: stored weights, one word = cols x (value byte, index byte)
    PAR = 2   #: per-channel output parameters, one word = cols x 8 bytes
    LUT = 3   #: the 256-byte activation lookup table


class LoadFormat(enum.Enum, shape=2):
    """How a LOAD's bytes become scratchpad words (``DmaBody.fmt``; see
    ``hw/spu/wgt_unpack.py`` for the bit streams). Value 3 is ``BAD_FIELD``, and so are
    ``PACKED`` and ``VALUES`` with a target other than WGT."""
    RAW = 0      #: the bytes are the words, copied unchanged (every target)
    PACKED = 1   #: WGT: per word cols value bytes, then cols 5-bit indices (13 * cols bits)
    VALUES = 2   #: WGT, s = 1: per word cols value bytes; every index is the word's entry


class ErrorCode(enum.Enum, shape=8):
    """STATUS.err_code values."""
    NONE = 0
    UNKNOWN_OPCODE = 1
    BAD_FIELD = 2
    OUT_OF_WINDOW = 3
    SCRATCHPAD_OVERFLOW = 4
    BUS_SLVERR = 5
    BUS_DECERR = 6
    WATCHDOG = 7
    #: a descriptor waits for a dependency token that no descriptor dispatched before it
    #: signalled, or its signal would take a token counter past its bound
    TOKEN = 8
    #: a fetch from a ring whose tail the head never meets (``RING_TAIL >= RING_SIZE``, which
    #: includes ``RING_SIZE = 0``) or from a head outside the ring (``RING_HEAD >= RING_SIZE``)
    BAD_RING = 9
    #: DECODE: the table block or the bitstream it read is unusable (a bad block, a corrupt
    #: or truncated entropy-coded segment, a crop outside the frame); the output span's
    #: contents are then unspecified, nothing outside it is written
    DECODE_ERROR = 10


#: Most SPUs a descriptor can address (``Header.spu_mask`` bits).
MAX_SPUS = 16


class Header(data.Struct):
    """``spu_mask`` selects SPUs (bit i: SPU i; 0 means all): a LOAD writes every selected
    SPU's scratchpad from one DRAM read (multicast), a GEMM starts on every selected SPU and
    finishes when all have, a STORE reads the lowest selected SPU. Bits of SPUs the device
    does not have are ignored, but a mask that names only such SPUs is ``BAD_FIELD``."""
    opcode: unsigned(4)
    wait_prev: 1
    wait_next: 1
    sig_prev: 1
    sig_next: 1
    spu_mask: 16
    reserved: 8


class DmaBody(data.Struct):
    """LOAD and STORE: ``rows`` rows of ``row_bytes`` bytes, row i at ``dram_addr + i*stride``.

    ``dram_addr``, ``row_bytes`` and ``stride`` are multiples of the DRAM bus width in bytes.
    ``sram_addr`` is a word address in the target scratchpad (the output scratchpad for STORE).
    ``fmt`` (:class:`LoadFormat`, a LOAD's only; a STORE's must be 0): ``RAW`` copies the bytes
    as words; ``PACKED`` and ``VALUES`` (target WGT only) decode the transfer's bytes, all rows
    in order, as one bit stream of packed weight words and write its whole words,
    ``floor(rows * row_bytes * 8 / word_bits)`` of them.
    """
    dram_addr: 32
    stride: 32
    row_bytes: 20
    rows: 16
    target: Target
    sram_addr: 16
    fmt: 2
    reserved: 104


class GemmBody(data.Struct):
    """``n_tiles`` x ``m_tiles`` tiles, channel tiles outer: tile (i, j) reads activation words
    ``act_addr + i*banks ...``, weight words ``wgt_addr + j*banks*nnz ...``, parameter word
    ``par_addr + j`` and writes output words ``out_addr + (j*m_tiles + i)*rows ...`` (raw), or
    int8 bytes in the activation layout from output word ``out_addr`` on (``mode = 1``, see
    ``hw/spu/spu.py``).

    ``out_act`` (int8 only, else ``BAD_FIELD``): the int8 results go to the *activation*
    scratchpad instead, from ACT word ``out_addr`` on (``m_tiles x ceil(n_tiles * cols / 32)``
    words, one bank of a row tile each), where the next GEMM reads them as its input: a layer
    chain stays on chip. ``out_stride`` (only with ``out_act``, else ``BAD_FIELD``; 0 means
    ``nbk = ceil(n_tiles * cols / 32)``, the block's own banks) is the ACT words from one row
    tile's output banks to the next's, so the channel-tile groups of one layer write their banks
    into one ``[row tile][bank]`` tensor (the layout the next layer's GEMM reads): row tile
    ``i``'s banks are words ``out_addr + i*out_stride ...``. The span ``[out_addr, out_addr +
    (m_tiles - 1)*stride + nbk)`` must lie inside the scratchpad (``SCRATCHPAD_OVERFLOW``) and
    must not overlap the words the GEMM reads, ``[act_addr, act_addr + m_tiles*banks)``
    (``BAD_FIELD``).

    ``conv`` (convolution without im2col): the activation words are read from an NHWC tensor in
    the ACT scratchpad through on-the-fly im2col windows instead of ``act_addr + i*banks + b``.
    A row tile is one output *pixel* of ``rows`` different images (array row ``r``: image
    ``r``; ACT row memory ``r`` holds image ``r``'s tensor), so every row of a tile reads the
    same word address and no data crosses rows. The tensor is a band of ``in_h`` input rows
    of ``row_pitch`` words each, from word ``act_addr`` on; a pixel is ``cbanks`` words (32
    channels each). Row tile ``i`` is output pixel ``(oy, ox) = divmod(i, out_w)``; its bank
    ``b`` is channel bank ``cb = b % cbanks`` of kernel tap ``(dy, dx) = divmod(b // cbanks,
    ksize)``. With ``st = 1 + stride2``, the tap's window row is ``y = oy*st + dy`` and its
    word offset in the row ``x = (ox*st + dx - pad) * cbanks``; the word read is::

        act_addr + (y - top) * row_pitch + x + cb   if top <= y < top + in_h
                                                    and 0 <= x and x + cbanks <= row_pitch
        pad_addr                                    otherwise (zero padding: the program
                                                    keeps a zero word there)

    (mod 2**16; see :func:`~..spu.spu.conv_act_words`). So ``top`` is the number of padding
    rows above the band (``pad`` for a layer's first output row, 0 for a band inside the
    image), and the bottom and right edges are wherever the band ends. ``banks`` is normally
    ``ksize**2 * cbanks``; the walk is defined for any value. ``ksize``, ``cbanks`` or
    ``out_w`` zero: ``BAD_FIELD``; ``act_addr + in_h*row_pitch`` past the ACT depth, or
    ``pad_addr`` outside it: ``SCRATCHPAD_OVERFLOW``; with ``out_act``, the written span
    overlapping ``[act_addr, act_addr + in_h*row_pitch)`` or ``pad_addr``: ``BAD_FIELD``.
    Without ``conv`` the other conv fields are ignored.

    ``pool`` (max pooling, with ``conv`` and ``out_act``, ``relu`` and ``lut`` 0 and ``n_tiles
    <= cbanks``, else ``BAD_FIELD``): no multiplication; the SPU walks the same windows and writes each window's
    signed byte-wise maximum. Pass ``j`` (``0 .. n_tiles - 1``) pools channel bank ``j``: for
    row tile ``i`` it reads the ``banks`` words of taps ``(dy, dx) = divmod(b, ksize)``,
    ``act_addr + (y - top) * row_pitch + x + j`` (``y``, ``x`` and the band test as above) or
    ``pad_addr`` (the program keeps a word of -128 there for max pooling), and writes their
    maximum, per row and byte, to ACT word ``out_addr + i * step + j`` with ``step =
    out_stride`` or, when that is 0, ``n_tiles``
    (:func:`~..spu.spu.pool_act_words`). The written span ``[out_addr, out_addr + (m_tiles -
    1) * step + n_tiles)`` is checked as ``out_act``'s is; the weight and parameter fields
    are not used and not checked.
    """
    act_addr: 16
    wgt_addr: 16
    par_addr: 16
    out_addr: 16
    banks: 16
    m_tiles: 16
    n_tiles: 16
    log2s: 3
    mode: 1      # 0 raw int32, 1 int8
    relu: 1
    lut: 1
    out_act: 1   # int8 results into the activation scratchpad
    out_stride: 16
    conv: 1      # convolution addressing: the activation words are im2col windows (above)
    ksize: 4
    stride2: 1
    pad: 3
    top: 3
    cbanks: 8
    row_pitch: 16
    in_h: 10
    out_w: 10
    pad_addr: 16
    pool: 1      # max pooling over the conv windows instead of a GEMM (above)
    reserved: 16


class VopOp(enum.Enum, shape=3):
    """``VopBody.op``: the vector unit's operations (:class:`~..vector.unit.VecOp`, the same
    values), and TO_WGT, which the SPU's vector sequencer runs without the unit."""
    ADD = 0        #: :func:`~s4accel.base.vector.residual_add` of A and B
    MUL = 1        #: :func:`~s4accel.base.vector.elementwise_mul` of A and B
    GELU = 2       #: :func:`~s4accel.base.vector.gelu` of A
    ROW_MAX = 3    #: :func:`~s4accel.base.vector.row_max` of each row of A
    ROW_SUM = 4    #: :func:`~s4accel.base.vector.row_sum` of each row of A
    SOFTMAX = 5    #: :func:`~s4accel.base.vector.softmax` of each row of A
    LAYERNORM = 6  #: :func:`~s4accel.base.vector.layernorm` of each row of A
    TO_WGT = 7     #: A as a dense weight image in WGT (:func:`~..vector.vop.to_wgt_image`)


class VopBody(data.Struct):
    """VOP: one vector-unit operation on every row of an int8 matrix in the ACT scratchpad
    (GEMM stage; its tokens are a GEMM's). :func:`vop_words` and
    :func:`~..vector.vop.vop_reference` are the definition.

    The matrix is the GEMM's activation layout: ``m_tiles`` row tiles of ``rows`` rows; row
    ``r`` of row tile ``i`` holds ``n`` int8 elements in bytes ``0 .. n-1`` of the ``B =
    ceil(n / 32)`` words ``a_addr + i*a_stride + k`` (``k < B``) of ACT row memory ``r``
    (``a_stride`` 0 means ``B``). ADD and MUL take a second matrix B the same way from
    ``b_addr``, ``b_stride``. Rows are processed one after another (tile by tile, row 0
    first); each row's result goes to the same row memory, ``w`` words a vector from word
    ``out_addr + i*out_stride`` on (``out_stride`` 0 means the row's output words):

    - ADD (``wide``: int16), MUL, GELU (int8), SOFTMAX (uint8, ``wide``: uint16, ``relu``:
      7-bit, 0..127, an int8 operand for the tensor core): the
      row's ``n`` results, element ``p`` in byte ``p`` (int8, ``w = 1``) or bytes ``2p, 2p+1``
      (16-bit, little-endian, ``w = 2``) of the row's ``w * B`` words; bytes past ``n`` of the
      last vector are 0;
    - ROW_MAX, ROW_SUM: one word, the int32 result in its bytes 0..3 (little-endian), the
      rest 0.

    Parameters (the golden functions' names): ADD ``a_mult = mult``, ``b_mult = mult_b``,
    ``shift``, ``relu``, ``wide`` (``chan`` 1: per channel, below); MUL ``mult``, ``shift``,
    ``relu``; GELU ``u_mult``, ``u_shift``, ``mult``, ``shift``; SOFTMAX ``mult``,
    ``shift``, ``wide`` (16-bit probabilities) or ``relu`` (7-bit: ``out_bits = 7``; both set
    is ``BAD_FIELD``).
    ``mask_n`` (SOFTMAX, ROW_MAX, ROW_SUM; 0: no mask): only positions ``p < mask_n`` of a
    row are valid (padded keys). Fields an operation does not use are ignored.

    LAYERNORM (``n`` channels, 2 to ``max_row``; int8 output, ``w = 1``) reads its input as
    int8 or, ``wide``, as int16 in the 16-bit ADD's layout (element ``p`` in bytes ``2p,
    2p+1`` of the row's ``2B`` words: A's words a row are ``2B``, its default stride ``2B``,
    :func:`vop_in_words`). ``shift`` is the golden function's ``in_shift`` (0..31); ``eps`` is
    ``mult | mult_b << 16 | u_mult << 32`` (40 bits: ``u_mult`` under 256). The per-channel
    parameters are in the PAR scratchpad from word ``b_addr`` on, in the GEMM's layout (word
    ``b_addr + j`` holds channels ``j*cols .. j*cols + cols-1``, 8 bytes each): ``bias`` the
    40-bit signed ``bytes 0..3 | byte 7 << 32``, ``mult`` the signed 16-bit bytes 4..5,
    ``shift`` byte 6's bits 0..5 (over 47 taken as 47, as the GEMM's requantizer does). The
    PAR span is ``[b_addr, b_addr + B * 32 / cols)``: whole vectors of 32 channels, the last
    one's channels past ``n`` read but unused.

    ADD with ``chan`` (per-channel residual scales): ``a_mult``, ``b_mult`` and ``shift`` are
    arrays over the ``n`` channels (element ``p`` of a row is channel ``p``), in the PAR
    scratchpad from word ``mult`` on (``mult`` is then a PAR address; ``mult_b`` and ``shift``
    are unused) in LAYERNORM's layout: channel ``c``'s ``a_mult`` the unsigned 16-bit bytes
    0..1, ``b_mult`` bytes 2..3, ``shift`` byte 6's bits 0..5 (over 47 taken as 47); bytes 4,
    5 and 7 are unused. The PAR span is ``[mult, mult + B * 32 / cols)``.
    :func:`~s4accel.sw.layout.add_par_image` builds it. ``chan`` on any other operation is
    ``BAD_FIELD``.

    TO_WGT (op 7; the vector unit is idle) copies A (``T = m_tiles * rows`` tokens, row ``r``
    of row tile ``i`` token ``i * rows + r``, ``n`` bytes each) into WGT from word
    ``out_addr`` as the dense (s = 1) weight image of ``W = A^T`` (``wide``) or ``W = A``
    (:func:`~..vector.vop.to_wgt_image`, :func:`~..vector.vop.to_wgt_words` words), for a
    GEMM whose second operand is an activation (attention's P V and Q K^T). It uses
    ``a_addr``, ``a_stride``, ``n``, ``m_tiles``, ``out_addr`` and ``wide``; a LOAD into WGT
    waits while it runs.

    Checks: ``BAD_FIELD`` for ``n`` or ``m_tiles`` 0, a row operation (SOFTMAX,
    ROW_MAX, ROW_SUM, LAYERNORM) with ``n`` over the unit's row buffer (``CAP_VEC.max_row``),
    a LAYERNORM with ``n`` 1, ``shift`` over 31 or ``u_mult`` over 255, a SOFTMAX with both
    ``wide`` and ``relu``, ``chan`` on an operation other than ADD, ``shift`` or ``u_shift``
    over 47, an SPU mask naming no SPU, and an output span overlapping an input span unless
    it is the same run (``out_addr`` = ``a_addr`` and ``out_stride`` = ``a_stride`` as
    given, likewise for B) and the operation is not a 16-bit ADD (which would overwrite
    words it has yet to read); ``SCRATCHPAD_OVERFLOW`` for a span past the ACT depth (the A
    span ``[a_addr, a_addr + (m_tiles-1)*stride + Bi)`` with ``Bi`` A's words a row, B's for
    ADD and MUL, the output's ``[out_addr, out_addr + (m_tiles-1)*out_stride + w*B)`` or ``+
    1`` for a row reduction) or, LAYERNORM and an ADD with ``chan``, a PAR span past the PAR
    depth, or, TO_WGT (no ACT output span, no overlap check), a WGT span past the WGT depth.
    A device without a vector unit (``CAP_VEC.max_row`` 0) answers ``UNKNOWN_OPCODE``.
    """
    a_addr: 16
    b_addr: 16
    out_addr: 16
    a_stride: 16
    b_stride: 16
    out_stride: 16
    m_tiles: 16
    n: 16
    mask_n: 16
    op: VopOp
    relu: 1
    wide: 1
    shift: 6
    mult: 16
    mult_b: 16
    u_mult: 16
    u_shift: 6
    chan: 1
    reserved: 14


class DecodeBody(data.Struct):
    """DECODE (the codec wrapper, :mod:`s4accel.base.codec`; runs on the LOAD stage, so its
    tokens are a LOAD's): decode the entropy-coded scan of ``bits_len`` bytes at ``bits_addr``
    with the table block (:data:`~s4accel.base.codec.TABLE_BLOCK_BYTES` bytes) at
    ``table_addr``, crop ``crop_w x crop_h`` pixels from ``(crop_x, crop_y)``, box-resize to
    ``out_w x out_h``, normalise and quantise, and write output pixel ``(y, x)`` into ACT word
    ``act_addr + y * out_w + x`` of every selected SPU, row memory ``lane``'s 32 bytes (the
    channels, then zeros).

    Dispatch checks, in this order: a device without a decoder (``Config.jpeg_decoders`` 0)
    does not know the opcode (``UNKNOWN_OPCODE``); ``table_addr`` or ``bits_addr`` not a
    multiple of the bus width in bytes, ``bits_len``, ``crop_w``, ``crop_h``, ``out_w`` or
    ``out_h`` zero, ``out_w > crop_w``, ``out_h > crop_h``, ``out_w > 1024`` (the resize's
    line buffer) or ``lane >= rows``:
    ``BAD_FIELD``; ``act_addr + out_h * out_w`` past the ACT depth: ``SCRATCHPAD_OVERFLOW``;
    the block or the bitstream's bus words outside a read window: ``OUT_OF_WINDOW``. What is
    wrong in the data read (the block, a crop outside the frame, a corrupt stream) is
    ``DECODE_ERROR``.
    """
    table_addr: 32
    bits_addr: 32
    bits_len: 24
    act_addr: 16
    lane: 4
    out_w: 12
    out_h: 12
    crop_x: 16
    crop_y: 16
    crop_w: 16
    crop_h: 16
    reserved: 28


class Body(data.Union):
    dma: DmaBody
    gemm: GemmBody
    vop: VopBody
    decode: DecodeBody


#: What the command processor sends an SPU: a GEMM or (``vop``) a VOP body.
ex_cmd_layout = data.StructLayout({"body": Body, "vop": 1})


def vop_words(op, n, wide):
    """``(B, w, out)`` of a VOP: input words a row (``ceil(n / 32)``), output words a vector
    (1, or 2 for a 16-bit result) and output words a row (``w * B``, or 1 for a row
    reduction)."""
    op = VopOp(op)
    b = -(-n // 32)
    w = 2 if wide and op in (VopOp.ADD, VopOp.SOFTMAX) else 1
    return b, w, (1 if op in (VopOp.ROW_MAX, VopOp.ROW_SUM) else w * b)


def vop_in_words(op, n, wide):
    """A's words a row of a VOP: ``B = ceil(n / 32)``, or ``2B`` for a LAYERNORM of 16-bit
    input (``wide``)."""
    b = -(-n // 32)
    return 2 * b if wide and VopOp(op) == VopOp.LAYERNORM else b


def vop_par_words(op, n, cols, chan=0):
    """PAR words a VOP reads (LAYERNORM and an ADD with ``chan``: ``B * 32 / cols``, whole
    vectors of 32 channels' parameters; other operations none)."""
    reads = VopOp(op) == VopOp.LAYERNORM or (chan and VopOp(op) == VopOp.ADD)
    return -(-n // 32) * (32 // cols) if reads else 0


class Descriptor(data.Struct):
    header: Header
    body: Body


#: The dependency-token counters: LOAD -> GEMM, GEMM -> LOAD, GEMM -> STORE, STORE -> GEMM.
TOKENS = ("ld2ex", "ex2ld", "ex2st", "st2ex")


def token_use(op, h):
    """(waits, signals): the token counters a LOAD (or DECODE), GEMM (or VOP) or STORE
    header ``h`` takes and gives (the command processor's ``tok_use``); other opcodes use
    none."""
    if op in (Opcode.LOAD.value, Opcode.DECODE.value):
        return ["ex2ld"] * h.wait_next, ["ld2ex"] * h.sig_next
    if op in (Opcode.GEMM.value, Opcode.VOP.value):
        return (["ld2ex"] * h.wait_prev + ["st2ex"] * h.wait_next,
                ["ex2ld"] * h.sig_prev + ["ex2st"] * h.sig_next)
    if op == Opcode.STORE.value:
        return ["ex2st"] * h.wait_prev, ["st2ex"] * h.sig_prev
    return [], []


# -- a plain-Python codec of the same layout (the models' and the compiler's hot path) ----------

class DescFields:
    """A decoded descriptor, or one of its structs, as plain attributes: every leaf field an
    ``int`` (enum-shaped fields too: ``Target(d.target)``, ``VopOp(v.op)``), the same values
    as ``Descriptor.from_bits(raw)``'s fields; immutable and shared (see
    :func:`decode_descriptor`)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __setattr__(self, name, value):
        raise AttributeError("a decoded descriptor is read-only")

    def __repr__(self):
        return f"DescFields({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def _layout_tree(layout, offset=0):
    """``{name: (offset, width) | subtree}`` of a struct or union layout, absolute offsets."""
    tree = {}
    for name, field in layout:
        shape = field.shape
        try:
            sub = data.Layout.cast(shape)
        except TypeError:
            sub = None
        if sub is not None and not isinstance(shape, enum.EnumType):
            tree[name] = _layout_tree(sub, offset + field.offset)
        else:
            tree[name] = (offset + field.offset, field.width)
    return tree


@functools.cache
def _tree():
    return _layout_tree(data.Layout.cast(Descriptor))


def _decode(tree, raw):
    kw = {}
    for name, node in tree.items():
        if isinstance(node, dict):
            kw[name] = _decode(node, raw)
        else:
            off, width = node
            kw[name] = raw >> off & ((1 << width) - 1)
    return DescFields(**kw)


@functools.lru_cache(maxsize=4096)      # (about 4 KB an entry)
def decode_descriptor(raw: int) -> DescFields:
    """The fields of the 256-bit descriptor ``raw`` (an ``int``, little-endian bytes as
    ``int.from_bytes``), as ``Descriptor.from_bits(raw)`` gives them but as plain ints
    (``d.header.opcode``, ``d.body.gemm.banks``, ...): the functional model and the hazard
    checker decode every descriptor they run, and Amaranth's views cost about 0.3 ms a field.
    Cached: the result is shared and read-only."""
    return _decode(_tree(), int(raw))


def _encode(tree, fields) -> int | None:
    value = 0
    for name, v in fields.items():
        node = tree.get(name)
        if node is None:
            return None
        if isinstance(node, dict):
            if not isinstance(v, dict):
                return None
            sub = _encode(node, v)
            if sub is None:
                return None
            value |= sub
            continue
        if isinstance(v, enum.Enum):
            v = v.value
        if not isinstance(v, (int, np.integer)):
            return None
        off, width = node
        value |= (int(v) & ((1 << width) - 1)) << off
    return value


def encode_descriptor(fields: dict) -> int:
    """``Descriptor.const(fields).as_bits()`` as an ``int``: the same bits (values wider than
    their field truncated, as Amaranth does), computed without Amaranth's constant machinery;
    anything the plain path does not handle (an unknown field, a non-integer value, two members
    of the body union) goes through ``Descriptor.const`` itself, with its errors."""
    body = fields.get("body")
    value = None
    if not isinstance(body, dict) or len(body) <= 1:
        value = _encode(_tree(), fields)
    if value is None:
        value = int(Descriptor.const(fields).as_bits())
    return value
