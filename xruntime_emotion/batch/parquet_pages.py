"""What a Parquet column chunk will cost to read, from its page headers, before pyarrow reads it.

A Parquet file states sizes twice: in its footer (which a writer may set to anything) and in the header
of every page, which is what a reader allocates and decompresses by. A table of image bytes can hide a
decompression bomb (300 MB of zeros compress to a few KB), and a dictionary page can make six rows of
one 300 MB value out of 300 MB. So each page header of the chunk is read here, from the byte range the
reader will use, and the chunk is read only when no page decompresses to more than a stated size and no
page uses an encoding whose decoded size its page does not bound (DELTA_BYTE_ARRAY shares prefixes).
The headers are Thrift compact structs; only the fields needed here are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

MAX_HEADER = 16 << 20  # bytes a page header may take (parquet-cpp's default limit)
# page type -> (the header field of its details, the encoding's field in them): data page (v1),
# dictionary page, data page v2. Index pages (type 1) hold no values.
_DETAIL = {0: (5, 2), 2: (7, 2), 3: (8, 4)}
# Encodings whose decoded values take at most their page's bytes (a dictionary's indices are read as
# indices: the column is read with read_dictionary): PLAIN, PLAIN_DICTIONARY, DELTA_LENGTH_BYTE_ARRAY,
# RLE_DICTIONARY. RLE and BIT_PACKED only ever encode levels.
BOUNDED_ENCODINGS = {0: "PLAIN", 2: "PLAIN_DICTIONARY", 6: "DELTA_LENGTH_BYTE_ARRAY", 8: "RLE_DICTIONARY"}


class PageError(ValueError):
    """A page header that cannot be read, or a chunk that would cost too much to read."""


@dataclass(frozen=True)
class Chunk:
    pages: int
    largest_page: int  # the most bytes one page decompresses to
    uncompressed: int  # all pages together


class _Reader:
    """Thrift compact protocol over a file, from an offset, at most MAX_HEADER bytes."""

    def __init__(self, f: BinaryIO, at: int) -> None:
        self.f, self.at, self.used = f, at, 0
        f.seek(at)
        self.buf = b""
        self.pos = 0

    def _more(self) -> None:
        if self.used >= MAX_HEADER:
            raise PageError(f"a page header longer than {MAX_HEADER} bytes")
        self.buf = self.f.read(min(1 << 10, MAX_HEADER - self.used))  # headers are small: no page data read
        self.pos = 0
        if not self.buf:
            raise PageError("the file ends inside a page header")

    def byte(self) -> int:
        if self.pos == len(self.buf):
            self._more()
        self.pos += 1
        self.used += 1
        return self.buf[self.pos - 1]

    def skip(self, n: int) -> None:
        if n < 0 or self.used + n > MAX_HEADER:
            raise PageError(f"a page header field of {n} bytes")
        while n:
            if self.pos == len(self.buf):
                self._more()
            step = min(n, len(self.buf) - self.pos)
            self.pos += step
            self.used += step
            n -= step

    def varint(self) -> int:
        value = shift = 0
        for _ in range(10):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise PageError("a malformed number in a page header")

    def integer(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)  # zigzag

    def struct(self, depth: int = 0) -> dict[int, Any]:
        if depth > 16:
            raise PageError("a page header nested too deeply")
        fields: dict[int, Any] = {}
        last = 0
        while (b := self.byte()) != 0:
            kind, delta = b & 0x0F, b >> 4
            last = last + delta if delta else self.integer()
            fields[last] = self.value(kind, depth)
        return fields

    def value(self, kind: int, depth: int, in_list: bool = False) -> Any:
        if kind in (1, 2):  # a bool: in a field header its value is the type; in a list, one byte
            return self.byte() == 1 if in_list else kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.integer()
        if kind == 7:
            self.skip(8)
        elif kind == 8:
            self.skip(self.varint())
        elif kind in (9, 10):
            head = self.byte()
            n = head >> 4 if head >> 4 != 15 else self.varint()
            for _ in range(n):
                self.value(head & 0x0F, depth + 1, in_list=True)
        elif kind == 11:
            n = self.varint()
            if n:
                types = self.byte()
                for _ in range(n):
                    self.value(types >> 4, depth + 1, in_list=True)
                    self.value(types & 0x0F, depth + 1, in_list=True)
        elif kind == 12:
            return self.struct(depth + 1)
        else:
            raise PageError(f"a page header field of unknown type {kind}")
        return None


def chunk_start(column: Any) -> int:
    """Where the reader starts a column chunk (its dictionary page, when it has one before the data)."""
    start = int(column.data_page_offset)
    dictionary = column.dictionary_page_offset
    if column.has_dictionary_page and dictionary and 0 < dictionary < start:
        start = int(dictionary)
    return start


def check_chunk(f: BinaryIO, column: Any, largest: int) -> Chunk:
    """Walk the page headers of one column chunk (``pyarrow`` ColumnChunkMetaData); raise PageError when a
    page would decompress to more than ``largest`` bytes or decode to more than its own size."""
    at, end = chunk_start(column), chunk_start(column) + int(column.total_compressed_size)
    pages = biggest = total = 0
    while at < end:
        r = _Reader(f, at)
        header = r.struct()
        kind, size, packed = header.get(1), header.get(2), header.get(3)
        if not all(isinstance(v, int) for v in (kind, size, packed)) or size < 0 or packed < 0:
            raise PageError(f"a malformed page header at byte {at}")
        if size > largest:
            raise PageError(f"a page decompresses to {size} bytes, over the {largest} read at a time")
        field = _DETAIL.get(kind)
        if field is not None:  # a data or dictionary page: its encoding must bound its decoded size
            detail = header.get(field[0])
            encoding = detail.get(field[1]) if isinstance(detail, dict) else None
            if encoding not in BOUNDED_ENCODINGS:
                raise PageError(f"a page in encoding {encoding}, whose decoded size its page does not bound")
        pages += 1
        biggest = max(biggest, size)
        total += size
        at += r.used + packed
    return Chunk(pages, biggest, total)
