"""What a Parquet column chunk will cost to read, from its page headers, before pyarrow reads it.

A Parquet file states sizes twice: in its footer (which a writer may set to anything) and in the header
of every page, which is what a reader allocates and decompresses by. A table of image bytes can hide a
decompression bomb (300 MB of zeros compress to a few KB), and a dictionary page can make six rows of
one 300 MB value out of 300 MB. So each page header of the chunk is read here, from the byte range the
reader will use, and the chunk is read only when no page uses an encoding whose values may lie outside
the pages (DELTA_BYTE_ARRAY shares prefixes) and every page passes two bounds:

- per value: a page of ``n`` values decompresses to at most ``max(1, n)`` images at the limit (plus
  ``PAGE_SLACK`` bytes each for lengths and levels). A writer puts many values in a page (pyarrow up to
  1024, its ``write_batch_size``), so a table of ordinary photos passes, while a page whose values
  average more than the limit holds an image over it: one 300 MB value is refused.
- per page: ``n`` is the writer's word, so a page also takes at most ``MAX_PAGE_BYTES``, or one image at
  the limit where that is more: what one read of a page may cost, whatever its header claims.

Every value read lies in one page (its own, or the dictionary page its index points into), so no value
is larger than the chunk's largest page: the caller reads as many rows at a time as that allows, and
reads them as plain values (Arrow's dictionary reader would keep every page written plain after the
dictionary page, a writer's fallback once its dictionary grows, as one ever-growing dictionary).

The headers are Thrift compact structs; only the fields needed here are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

MAX_HEADER = 16 << 20  # bytes a page header may take (parquet-cpp's default limit)
MAX_PAGE_BYTES = 128 << 20  # the most one page may decompress to, unless one image at the limit is more
PAGE_SLACK = 64  # bytes a value may take in a page beyond its own: a 4-byte length, its levels
# page type -> (the header field of its details, the encoding's field in them): data page (v1),
# dictionary page, data page v2; num_values is field 1 of each. Index pages (type 1) hold no values.
_DETAIL = {0: (5, 2), 2: (7, 2), 3: (8, 4)}
# Encodings whose every value lies in one page: PLAIN and DELTA_LENGTH_BYTE_ARRAY in their own page,
# PLAIN_DICTIONARY and RLE_DICTIONARY (indices) in the dictionary page. RLE and BIT_PACKED only ever
# encode levels.
BOUNDED_ENCODINGS = {0: "PLAIN", 2: "PLAIN_DICTIONARY", 6: "DELTA_LENGTH_BYTE_ARRAY", 8: "RLE_DICTIONARY"}


class PageError(ValueError):
    """A page header that cannot be read, or a chunk that would cost too much to read."""


class PageTooLarge(PageError):
    """A page over a bound: over ``max(1, values)`` images at the limit (``per_value``: an image in it is
    over the limit), or of ``size`` bytes over the ``cap`` one page may take."""

    def __init__(self, message: str, per_value: bool, size: int, values: int, cap: int) -> None:
        super().__init__(message)
        self.per_value, self.size, self.values, self.cap = per_value, size, values, cap


@dataclass(frozen=True)
class Chunk:
    pages: int
    largest_page: int  # the most bytes one page decompresses to: no value read is larger
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


def page_cap(per_value: int) -> int:
    """The most bytes one page may decompress to, for an image byte limit of ``per_value``."""
    return max(MAX_PAGE_BYTES, per_value + PAGE_SLACK)


def check_chunk(f: BinaryIO, column: Any, per_value: int) -> Chunk:
    """Walk the page headers of one column chunk (``pyarrow`` ColumnChunkMetaData); raise PageTooLarge
    when a page would decompress to more than ``max(1, values)`` images of ``per_value`` bytes or more than
    ``page_cap(per_value)``, PageError when a header is unreadable or a page's values may lie outside the
    pages."""
    cap = page_cap(per_value)
    at, end = chunk_start(column), chunk_start(column) + int(column.total_compressed_size)
    pages = biggest = total = 0
    while at < end:
        r = _Reader(f, at)
        header = r.struct()
        kind, size, packed = header.get(1), header.get(2), header.get(3)
        if not all(isinstance(v, int) for v in (kind, size, packed)) or size < 0 or packed < 0:
            raise PageError(f"a malformed page header at byte {at}")
        values = 0
        field = _DETAIL.get(kind)
        if field is not None:  # a data or dictionary page: its encoding must keep its values in the pages
            detail = header.get(field[0])
            if not isinstance(detail, dict) or not isinstance(detail.get(1), int) or detail[1] < 0:
                raise PageError(f"a malformed page header at byte {at}")
            values = detail[1]
            encoding = detail.get(field[1])
            if encoding not in BOUNDED_ENCODINGS:
                raise PageError(f"a page in encoding {encoding}, whose values may lie outside the pages")
        if size > max(1, values) * (per_value + PAGE_SLACK):
            raise PageTooLarge(
                f"a page decompresses to {size} bytes for {values} value{'s' * (values != 1)}, more than "
                f"{max(1, values)} image{'s' * (values > 1)} at the limit of {per_value} bytes",
                per_value=True,
                size=size,
                values=values,
                cap=cap,
            )
        if size > cap:
            raise PageTooLarge(
                f"a page decompresses to {size} bytes for {values} values, over the {cap} one page may take",
                per_value=False,
                size=size,
                values=values,
                cap=cap,
            )
        pages += 1
        biggest = max(biggest, size)
        total += size
        at += r.used + packed
    return Chunk(pages, biggest, total)
