"""Just enough of a Parquet footer to fetch only the row groups a page needs (S3 ranged GETs).

A Parquet file ends with its metadata (Thrift compact protocol), its length (4 bytes, little
endian) and `PAR1`. From the metadata this module reads each row group's row count and the
byte span of its column chunks; the reader then fetches the footer and the spans a page needs,
lays them at their offsets in an otherwise empty buffer of the file's size, and lets polars
decode that buffer with the page's slice (polars skips the row groups outside the slice, so the
empty parts are never read). Any surprise is a FooterError and the reader falls back to
fetching the whole file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"PAR1"
TAIL = 8  # footer length (4 bytes) + magic (4 bytes)

# Thrift compact protocol type ids.
_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE = 1, 2, 3, 4, 5, 6, 7
_BINARY, _LIST, _SET, _MAP, _STRUCT = 8, 9, 10, 11, 12

# Field ids of the parquet.thrift structures read here.
_FILE_ROW_GROUPS = 4
_GROUP_COLUMNS, _GROUP_NUM_ROWS = 1, 3
_CHUNK_META = 3
_META_COMPRESSED_SIZE, _META_DATA_PAGE, _META_DICTIONARY_PAGE = 7, 9, 11


class FooterError(Exception):
    """The footer is not one this module can read."""


@dataclass(frozen=True, slots=True)
class RowGroup:
    first_row: int
    rows: int
    start: int  # byte offset of its first column chunk
    end: int  # one past its last byte


def footer_length(tail: bytes) -> int:
    """The metadata's length, from the file's last 8 bytes."""
    if len(tail) < TAIL or tail[-4:] != MAGIC:
        raise FooterError("not a Parquet file (no PAR1 at its end)")
    return int(struct.unpack("<I", tail[-8:-4])[0])


def row_groups(metadata: bytes) -> list[RowGroup]:
    """Each row group's rows and byte span, in file order."""
    try:
        fields = _Reader(metadata).struct()
    except (IndexError, struct.error) as exc:
        raise FooterError(f"truncated metadata: {exc}") from exc
    groups: list[RowGroup] = []
    first_row = 0
    for group in fields.get(_FILE_ROW_GROUPS, []):
        rows = int(group[_GROUP_NUM_ROWS])
        spans = [_chunk_span(chunk) for chunk in group.get(_GROUP_COLUMNS, [])]
        if not spans:
            raise FooterError("a row group without columns")
        groups.append(RowGroup(first_row, rows, min(s for s, _ in spans), max(e for _, e in spans)))
        first_row += rows
    return groups


def _chunk_span(chunk: dict[int, Any]) -> tuple[int, int]:
    meta = chunk.get(_CHUNK_META)
    if not isinstance(meta, dict):
        raise FooterError("a column chunk without metadata (stored in another file?)")
    start = int(meta[_META_DATA_PAGE])
    dictionary = meta.get(_META_DICTIONARY_PAGE)
    if isinstance(dictionary, int) and 0 < dictionary < start:
        start = dictionary
    return start, start + int(meta[_META_COMPRESSED_SIZE])


class _Reader:
    """A Thrift compact protocol reader: structs become {field id: value}."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        field_id = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            field_id = field_id + delta if delta else self.zigzag()
            fields[field_id] = self.value(kind)

    def value(self, kind: int) -> Any:
        if kind in (_BOOL_TRUE, _BOOL_FALSE):
            return kind == _BOOL_TRUE
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.pos += 8
            return None
        if kind == _BINARY:
            size = self.varint()
            self.pos += size
            return None  # names and statistics are not needed
        if kind in (_LIST, _SET):
            header = self.byte()
            size, item = header >> 4, header & 0x0F
            if size == 0x0F:
                size = self.varint()
            return [self.collection_item(item) for _ in range(size)]
        if kind == _MAP:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.value(types >> 4)
                    self.value(types & 0x0F)
            return None
        if kind == _STRUCT:
            return self.struct()
        raise FooterError(f"unknown Thrift type {kind}")

    def collection_item(self, kind: int) -> Any:
        if kind in (_BOOL_TRUE, _BOOL_FALSE):  # inside a list a bool is one byte
            return self.byte() == 1
        return self.value(kind)
