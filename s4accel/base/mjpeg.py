"""Motion JPEG streams: concatenated JPEG frames split and decoded frame after frame (issue 23).

Contract: `split_frames(data)` finds the frames of a byte stream of concatenated JPEG files
(SOI ... EOI each, as a camera or an AVI / MJPEG extractor writes them) and returns them with
their offsets and the number of bytes between them that belong to no frame.  A frame starts at
an SOI marker followed by another marker (``FF D8 FF``) and ends at its EOI marker, found by
walking the marker segments by their lengths and the entropy-coded data by its markers, so an
``FF D9`` inside a segment (an Exif thumbnail in APP1) does not end the frame early.

Bytes before the first frame, between frames and after the last one are skipped and counted
(`Frames.skipped`): padding and chunk headers left by container extractors are common, and
skipping them is what a decoder of such streams does.  A stream with no SOI at all, and a frame
that ends before its EOI marker (a truncated last frame, or a corrupt segment length), raise
`JpegError` naming the frame's index and offset.

`decode_frames(data)` decodes each frame with :func:`s4accel.base.jpeg.decode` (frames without
DHT segments use the standard tables of T.81 Annex K.3, see there); an error names the frame.

AVI containers are not parsed: no maintained pure-Python AVI (RIFF) library is installed, and
the frames of an AVI MJPEG file are its ``00dc`` chunks, JPEG frames that `split_frames` finds
in the raw file as well (the RIFF chunk headers between them are skipped; not tested on a real
AVI file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .jpeg import JpegError, decode

__all__ = ["Frames", "decode_frames", "split_frames"]

_SOI = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Frames:
    """The frames of a stream: each frame's bytes (SOI .. EOI), its offset in the stream, and
    the number of bytes that belong to no frame."""

    frames: tuple[bytes, ...]
    offsets: tuple[int, ...]
    skipped: int

    def __len__(self) -> int:
        return len(self.frames)


def _frame_end(data: bytes, start: int, index: int) -> int:
    """Offset just past the EOI of the frame whose SOI is at `start`."""
    n = len(data)

    def fail(why: str) -> JpegError:
        return JpegError(f"frame {index} (offset {start}): {why}")

    pos = start + 2
    while True:
        if pos >= n:
            raise fail("truncated: the stream ends before its EOI marker")
        if data[pos] != 0xFF:
            raise fail(f"bad marker: byte {data[pos]:#04x} at offset {pos} where a marker "
                       "was expected")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise fail("truncated: the stream ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return pos
        if marker == 0xD8:
            raise fail(f"SOI marker at offset {pos - 2} before the frame's EOI")
        if 0xD0 <= marker <= 0xD7 or marker in (0x00, 0x01):
            continue                        # no length; decode() judges whether it belongs
        if pos + 2 > n:
            raise fail("truncated: the stream ends inside a marker segment")
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2 or pos + length > n:
            raise fail("truncated: a marker segment runs past the end of the stream")
        pos += length
        if marker == 0xDA:
            # entropy-coded data: up to the next marker that is not stuffing or RSTn
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    raise fail("truncated: the stream ends inside the entropy-coded data")
                nxt = data[pos + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                    pos += 2
                elif nxt == 0xFF:
                    pos += 1
                else:
                    break


def split_frames(data: bytes) -> Frames:
    """The JPEG frames of `data` (see the module docstring); raises `JpegError`."""
    data = bytes(data)
    frames, offsets = [], []
    skipped = 0
    pos = 0
    while True:
        start = data.find(_SOI, pos)
        if start < 0:
            skipped += len(data) - pos
            break
        skipped += start - pos
        pos = _frame_end(data, start, len(frames))
        frames.append(data[start:pos])
        offsets.append(start)
    if not frames:
        raise JpegError("no JPEG frame in the stream (no SOI marker)")
    return Frames(tuple(frames), tuple(offsets), skipped)


def decode_frames(data: bytes | Frames) -> Iterator[np.ndarray]:
    """Decode the frames of a stream (bytes, or `split_frames`'s result) one after the other,
    as :func:`s4accel.base.jpeg.decode` does; a `JpegError` names the frame's index."""
    split = data if isinstance(data, Frames) else split_frames(data)
    for i, (frame, off) in enumerate(zip(split.frames, split.offsets, strict=True)):
        try:
            yield decode(frame)
        except JpegError as e:
            raise JpegError(f"frame {i} (offset {off}): {e}") from e
