"""pg_dump's custom-format archive, read as it streams past: structure checked, COPY rows counted.

The layout follows PostgreSQL's ``pg_backup_archiver.c`` (``WriteHead``/``ReadHead``,
``WriteToc``/``ReadToc``) and ``pg_backup_custom.c`` (``_StartData``, ``_CustomWriteFunc``,
``_StartLOs``, ``_readBlockHeader``). Written to a pipe, an archive is::

    header   "PGDMP", version (3 bytes), int size, offset size, format, compression,
             creation time (7 ints), database name, server version, pg_dump version
    TOC      entry count, then per entry: dump id, has-data flag, catalog ids, tag, desc,
             section, definition, drop statement, COPY statement, namespace, tablespace,
             table AM, [relkind], owner, "with oids", dependencies, data-offset flag
    blocks   until EOF: type byte, dump id, then
             DATA  chunks (length int, bytes) up to a zero length: the COPY text of a table
             BLOBS per large object: its oid, then chunks up to a zero length; oid 0 ends

An int is a sign byte then ``int size`` bytes, least significant first. With ``-Z0`` a
table's data is the text of ``COPY ... TO STDOUT``: one line per row, newlines inside
values escaped, so each row ends with the only raw newline it contains, and pg_dump ends
the data with a ``\\.`` line (plus blank lines). Counting newlines in the chunk bodies,
never in the framing, gives each table's row count exactly, with no query. Reading is
done in place on the chunks handed to ``feed``: the stream is not copied.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from railyard.core.errors import PermanentError

MAGIC = b"PGDMP"
ARCH_CUSTOM = 1
BLK_DATA = 1
BLK_BLOBS = 3
OFFSET_POS_NOT_SET, OFFSET_POS_SET, OFFSET_NO_DATA = 1, 2, 3
# Archive versions (major, minor, rev) whose layout this reader knows: 1.12 (PostgreSQL 9.0) to 1.16 (17, 18).
OLDEST_VERSION = (1, 12, 0)
NEWEST_VERSION = (1, 16, 0)
V_TABLEAM = (1, 14, 0)
V_COMPRESSION_ALGORITHM = (1, 15, 0)
V_RELKIND = (1, 16, 0)
TABLE_DATA = "TABLE DATA"
LARGE_OBJECTS_KEY = "pg_catalog.pg_largeobject_metadata"  # what count(*) of large objects reads
# Retry parsing an unfinished header/TOC only once this much more has arrived (keeps it linear).
TOC_RETRY_GROWTH = 2
RUNS_MIN_BYTES = 4096  # below this, reading chunk by chunk costs less than setting up _RowRuns
TAIL_BYTES = 8  # enough to see "\n\\.\n\n\n", how pg_dump ends COPY data
_COPY_END = re.compile(rb"(\A|\n)\\\.\n\n*\Z")


class ArchiveFormatError(PermanentError):
    """The stream is not a custom-format archive this reader can follow."""


class _NeedMore(Exception):
    """The header and TOC are not complete yet."""


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    has_data: bool
    desc: str
    tag: str
    namespace: str | None
    data_state: int
    drop: str | None = None  # the SQL that drops what the entry creates, as pg_restore --clean runs it

    @property
    def name(self) -> str:
        return f"{self.namespace}.{self.tag}" if self.namespace else self.tag


@dataclass(frozen=True)
class ArchiveHeader:
    version: tuple[int, int, int]
    int_size: int
    offset_size: int
    compressed: bool
    database: str | None
    server_version: str | None
    pg_dump_version: str | None


@dataclass
class ArchiveSummary:
    """What one archive held: its header, its TOC, and the rows of every table whose data it carries."""

    header: ArchiveHeader
    entries: list[TocEntry]
    row_counts: dict[str, int] = field(default_factory=dict)  # "schema.table": rows, TABLE DATA entries only
    large_objects: int = 0
    data_blocks: int = 0

    def table_counts(self) -> dict[str, int]:
        """Row counts as the manifest records them: tables, plus large objects when there are any."""
        counts = dict(self.row_counts)
        if self.large_objects:
            counts[LARGE_OBJECTS_KEY] = self.large_objects
        return counts


class _Cursor:
    """Reads the header and TOC from a buffer that may end too soon (then raises _NeedMore)."""

    def __init__(self, buf: bytes | bytearray):
        self.buf = buf
        self.pos = 0
        self.int_size = 4

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise _NeedMore
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        return self.take(length).decode("utf-8", errors="replace")


def _read_header(cur: _Cursor) -> ArchiveHeader:
    if cur.take(5) != MAGIC:
        raise ArchiveFormatError("the dump does not start with PGDMP: it is not a pg_dump custom-format archive")
    version = (cur.byte(), cur.byte(), cur.byte())
    if not OLDEST_VERSION <= version <= NEWEST_VERSION:
        raise ArchiveFormatError(
            f"archive version {'.'.join(map(str, version))} is not one this version of Railyard can check "
            f"(it reads {'.'.join(map(str, OLDEST_VERSION))} to {'.'.join(map(str, NEWEST_VERSION))}); "
            "use a pg_dump of major version 18 or older, or set BACKUP_ROW_COUNTS=estimate"
        )
    int_size, offset_size, fmt = cur.byte(), cur.byte(), cur.byte()
    if int_size not in (4, 8) or offset_size not in (4, 8):
        raise ArchiveFormatError(f"archive declares int size {int_size} and offset size {offset_size}: corrupt header")
    if fmt != ARCH_CUSTOM:
        raise ArchiveFormatError(f"archive format {fmt} is not the custom format (1)")
    cur.int_size = int_size
    compressed = cur.byte() != 0 if version >= V_COMPRESSION_ALGORITHM else cur.int() != 0
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        cur.int()
    database, server_version, pg_dump_version = cur.str(), cur.str(), cur.str()
    return ArchiveHeader(version, int_size, offset_size, compressed, database, server_version, pg_dump_version)


def _read_toc(cur: _Cursor, header: ArchiveHeader) -> list[TocEntry]:
    count = cur.int()
    if count < 0:
        raise ArchiveFormatError(f"archive TOC claims {count} entries: corrupt TOC")
    entries = []
    for _ in range(count):
        dump_id = cur.int()
        has_data = cur.int() != 0
        cur.str()  # catalog table oid
        cur.str()  # catalog oid
        tag = cur.str() or ""
        desc = cur.str() or ""
        cur.int()  # section
        cur.str()  # definition
        drop = cur.str()
        cur.str()  # COPY statement
        namespace = cur.str()
        cur.str()  # tablespace
        if header.version >= V_TABLEAM:
            cur.str()
        if header.version >= V_RELKIND:
            cur.int()
        cur.str()  # owner
        cur.str()  # "with oids", always "false" since PostgreSQL 12
        while cur.str() is not None:  # dependencies, ended by a NULL string
            pass
        data_state = cur.byte()
        cur.take(header.offset_size)
        if dump_id <= 0 or data_state not in (OFFSET_POS_NOT_SET, OFFSET_POS_SET, OFFSET_NO_DATA):
            raise ArchiveFormatError(f"archive TOC entry {tag!r} ({desc}) is malformed: corrupt TOC")
        entries.append(TocEntry(dump_id, has_data, desc, tag, namespace, data_state, drop or None))
    return entries


class _RowRuns:
    """Chunks of one buffer proven, with numpy, to hold one COPY row each.

    pg_dump writes a table's rows one chunk each, so chunk starts are expected right after
    newlines. Every such candidate's length is read at once and a link i -> i+1 is proven
    when chunk i (length > 0) ends exactly where candidate i+1 starts: its body then holds
    exactly one newline, its last byte, since every newline starts a candidate. A run of
    proven links from a known chunk start counts its rows without a Python step per row;
    anything unproven (a length whose bytes contain a newline, the end of the data, a chunk
    split by the buffer's end) is read one chunk at a time, so the counts are the same.
    """

    def __init__(self, data: bytes, start: int):
        import numpy as np  # only backups need it; kept out of every other import

        self._np = np
        buf = np.frombuffer(data, dtype=np.uint8)
        starts = np.concatenate(([start], np.flatnonzero(buf[start:] == 0x0A) + (start + 1)))
        starts = starts[starts + 5 <= len(data)]
        length = buf[starts + 1].astype(np.int64)
        for shift, offset in ((8, 2), (16, 3), (24, 4)):
            length |= buf[starts + offset].astype(np.int64) << shift
        linked = (buf[starts[:-1]] == 0) & (length[:-1] > 0) & (starts[:-1] + 5 + length[:-1] == starts[1:])
        self._starts = starts
        self._breaks = np.flatnonzero(~linked)
        self._links = len(linked)

    def run(self, pos: int) -> tuple[int, int, int]:
        """From the chunk start ``pos``: (rows proven, position after them, start of the last row's body)."""
        np = self._np
        i = int(np.searchsorted(self._starts, pos))
        if i >= self._links or int(self._starts[i]) != pos:
            return 0, pos, pos
        b = int(np.searchsorted(self._breaks, i))
        j = int(self._breaks[b]) if b < len(self._breaks) else self._links
        if j == i:
            return 0, pos, pos
        return j - i, int(self._starts[j]), int(self._starts[j - 1]) + 5


# States of the block reader.
_BLOCK_HEAD, _CHUNK_LEN, _CHUNK_BODY, _LO_OID = range(4)


class ArchiveReader:
    """Feed it the archive's bytes in order, then call ``finish()`` for the summary.

    Raises ArchiveFormatError as soon as the bytes cannot be a custom-format archive, and
    from ``finish()`` when the archive ended early or lacks data its TOC promised.
    """

    def __init__(self) -> None:
        self._head = bytearray()  # bytes until the TOC is complete
        self._retry_at = 0
        self.header: ArchiveHeader | None = None
        self._entries: dict[int, TocEntry] = {}
        self._toc: list[TocEntry] = []
        self._seen: set[int] = set()
        self._counts: dict[str, int] = {}
        self._large_objects = 0
        self._blocks = 0
        self.bytes_read = 0
        # Block reader state; the hot path touches only these.
        self._state = _BLOCK_HEAD
        self._carry = b""  # a fixed-size item split across two feeds
        self._remaining = 0  # bytes left in the current chunk body
        self._block_type = 0
        self._entry: TocEntry | None = None
        self._rows = 0  # newlines in the current table's data
        self._tail = b""  # last bytes of the current table's data
        self._data_bytes = 0  # length of the current table's data
        self._int: struct.Struct = struct.Struct("<BI")

    def feed(self, data: bytes) -> None:
        self.bytes_read += len(data)
        if self.header is not None:
            self._scan(data)
            return
        self._head += data
        if len(self._head) >= self._retry_at:
            self._parse_head()

    def _parse_head(self) -> None:
        """Read the header and TOC once all of them arrived, then the blocks after them."""
        cur = _Cursor(self._head)
        try:
            header = _read_header(cur)
            toc = _read_toc(cur, header)
        except _NeedMore:
            self._retry_at = len(self._head) * TOC_RETRY_GROWTH
            return
        self._start_blocks(header, toc)
        rest = bytes(self._head[cur.pos :])
        self._head = bytearray()
        self._scan(rest)

    def _start_blocks(self, header: ArchiveHeader, toc: list[TocEntry]) -> None:
        if header.compressed:
            raise ArchiveFormatError(
                "the archive is compressed by pg_dump; rows can only be counted in an uncompressed (-Z0) archive"
            )
        self.header = header
        self._toc = toc
        for entry in toc:
            if entry.dump_id in self._entries:
                raise ArchiveFormatError(f"archive TOC has dump id {entry.dump_id} twice: corrupt TOC")
            self._entries[entry.dump_id] = entry
        self._int = struct.Struct("<BI" if header.int_size == 4 else "<BQ")

    def _scan(self, data: bytes) -> None:
        """Walk the data blocks in ``data``; newlines are counted in chunk bodies only."""
        pos, end = 0, len(data)
        item = self._int.size
        unpack = self._int.unpack_from
        if self._carry:
            size = 1 + item if self._state == _BLOCK_HEAD else item
            missing = size - len(self._carry)
            joined = self._carry + data[:missing]
            if len(joined) < size:
                self._carry = joined
                return
            self._carry = b""
            self._item(joined, 0)
            pos = missing
        runs: _RowRuns | None = None
        while pos < end:
            state = self._state
            if state == _CHUNK_BODY:
                stop = min(end, pos + self._remaining)
                if self._block_type == BLK_DATA:
                    self._rows += data.count(b"\n", pos, stop)
                    self._data_bytes += stop - pos
                    if stop - pos >= TAIL_BYTES:
                        self._tail = data[stop - TAIL_BYTES : stop]
                    else:
                        self._tail = (self._tail + data[pos:stop])[-TAIL_BYTES:]
                self._remaining -= stop - pos
                pos = stop
                if not self._remaining:
                    self._state = _CHUNK_LEN
                continue
            size = 1 + item if state == _BLOCK_HEAD else item
            if end - pos < size:
                self._carry = data[pos:end]
                return
            if state == _CHUNK_LEN and self._block_type == BLK_DATA:
                if item == 5 and end - pos >= RUNS_MIN_BYTES:
                    runs = runs or _RowRuns(data, pos)
                    chunks, after, last_body = runs.run(pos)
                    if chunks:
                        self._rows += chunks
                        self._data_bytes += after - pos - chunks * size
                        self._tail = data[max(last_body, after - TAIL_BYTES) : after]
                        pos = after
                        continue
                # One chunk at a time: what the runs could not prove, and small buffers.
                sign, length = unpack(data, pos)
                pos += size
                if sign:
                    raise self._error(f"a negative chunk length in the data of {self._where()}")
                if length:
                    self._remaining = length
                    self._state = _CHUNK_BODY
                else:
                    self._end_table()
                continue
            self._item(data, pos)
            pos += size

    def _item(self, data: bytes, pos: int) -> None:
        """One fixed-size item at ``pos``: a block header, a large object's oid or a chunk length."""
        state = self._state
        if state == _BLOCK_HEAD:
            self._start_block(data[pos], *self._int.unpack_from(data, pos + 1))
            return
        sign, value = self._int.unpack_from(data, pos)
        if sign:
            raise self._error(f"a negative length or oid in {self._where()}")
        if state == _LO_OID:
            if value == 0:
                self._state = _BLOCK_HEAD
            else:
                self._large_objects += 1
                self._state = _CHUNK_LEN
        elif value:
            self._remaining = value
            self._state = _CHUNK_BODY
        elif self._block_type == BLK_DATA:
            self._end_table()
        else:
            self._state = _LO_OID

    def _start_block(self, block_type: int, sign: int, dump_id: int) -> None:
        entry = None if sign else self._entries.get(dump_id)
        if block_type not in (BLK_DATA, BLK_BLOBS):
            raise self._error(f"a data block of unknown type {block_type}")
        if entry is None or not entry.has_data:
            raise self._error(f"a data block for dump id {dump_id}, which the TOC does not list as having data")
        if entry.dump_id in self._seen:
            raise self._error(f"a second data block for {entry.desc} {entry.name}")
        self._seen.add(entry.dump_id)
        self._blocks += 1
        self._entry = entry
        self._block_type = block_type
        if block_type == BLK_BLOBS:
            self._state = _LO_OID
            return
        self._rows = 0
        self._data_bytes = 0
        self._tail = b""
        self._state = _CHUNK_LEN

    def _end_table(self) -> None:
        entry = self._entry
        assert entry is not None
        rows, tail = self._rows, self._tail
        if tail and not tail.endswith(b"\n"):
            raise self._error(f"the data of {entry.desc} {entry.name} ending inside a row")
        # pg_dump ends COPY data with a "\\." line and blank lines. No row can be that line (a
        # backslash in a value is doubled), so its newline and those after it are not rows.
        end = _COPY_END.search(tail)
        if end and (end.group(1) or len(tail) == self._data_bytes):  # \A: only at the data's start
            rows -= tail.count(b"\n", end.end(1))
        if entry.desc == TABLE_DATA:
            self._counts[entry.name] = rows
        self._state = _BLOCK_HEAD

    def _where(self) -> str:
        entry = self._entry
        return f"{entry.desc} {entry.name}" if entry else "the archive"

    def _error(self, what: str) -> ArchiveFormatError:
        return ArchiveFormatError(f"the archive has {what} (near byte {self.bytes_read}): corrupt or truncated dump")

    @property
    def toc(self) -> list[TocEntry] | None:
        """The TOC, once the header and TOC have been read."""
        return list(self._toc) if self.header is not None else None

    def finish(self) -> ArchiveSummary:
        """The summary, once every byte was fed; raises ArchiveFormatError if the archive is incomplete."""
        if self.header is None:
            self._parse_head()
        if self.header is None:
            raise ArchiveFormatError(
                f"the archive ended after {self.bytes_read} bytes, before its table of contents was complete"
            )
        if self._state != _BLOCK_HEAD or self._carry:
            raise ArchiveFormatError(f"the archive ended inside the data of {self._where()}: truncated dump")
        missing = [
            e for e in self._toc if e.has_data and e.data_state != OFFSET_NO_DATA and e.dump_id not in self._seen
        ]
        if missing:
            names = ", ".join(f"{e.desc} {e.name}" for e in missing[:5])
            raise ArchiveFormatError(f"the archive ended without the data of {len(missing)} TOC entries ({names})")
        return ArchiveSummary(
            header=self.header,
            entries=list(self._toc),
            row_counts=dict(self._counts),
            large_objects=self._large_objects,
            data_blocks=self._blocks,
        )
