"""Custom-format archives written the way pg_dump writes them to a pipe, for the reader's unit tests.

Real dumps (tests/integration/test_archive_counts.py) prove the layout; these let the unit
tests choose what pg_dump rarely does: lengths whose bytes contain a newline, rows split
over several chunks or several rows in one chunk, large objects whose bytes look like framing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.backup.dump_archive import BLK_BLOBS, BLK_DATA, OFFSET_NO_DATA, OFFSET_POS_NOT_SET

COPY_TRAILER = b"\\.\n\n\n"


def pg_int(value: int, size: int = 4) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(size, "little")


def pg_str(text: str | None) -> bytes:
    if text is None:
        return pg_int(-1)
    data = text.encode()
    return pg_int(len(data)) + data


def copy_text(value: str | None) -> str:
    """One value as COPY's text format writes it."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


@dataclass
class Table:
    schema: str
    name: str
    rows: list[list[str | None]]
    # Chunk sizes to cut the COPY text into; empty: one chunk per row, as pg_dump does.
    cuts: list[int] = field(default_factory=list)

    def copy_data(self) -> bytes:
        lines = "".join("\t".join(copy_text(v) for v in row) + "\n" for row in self.rows)
        return lines.encode() + COPY_TRAILER


def _chunks(table: Table) -> list[bytes]:
    if not table.cuts:
        return [("\t".join(copy_text(v) for v in row) + "\n").encode() for row in table.rows] + [COPY_TRAILER]
    data, out, i = table.copy_data(), [], 0
    for cut in table.cuts:
        if i >= len(data):
            break
        out.append(data[i : i + cut])
        i += cut
    if i < len(data):
        out.append(data[i:])
    return out


def write_archive(
    tables: list[Table], large_objects: list[bytes] | None = None, version: tuple[int, int, int] = (1, 16, 0)
) -> bytes:
    """A whole archive: header, TOC (a TABLE entry and a TABLE DATA entry per table), data blocks."""
    out = bytearray(b"PGDMP" + bytes(version) + bytes([4, 8, 1]))
    out += bytes([0]) if version >= (1, 15, 0) else pg_int(0)
    for part in (0, 0, 3, 2, 11, 126, 0):  # creation time
        out += pg_int(part)
    out += pg_str("app") + pg_str("15.20") + pg_str("18.6")
    entries: list[tuple[int, bool, str, str, str | None]] = []
    next_id = 100
    for table in tables:
        entries.append((next_id, False, "TABLE", table.name, table.schema))
        entries.append((next_id + 1, True, "TABLE DATA", table.name, table.schema))
        next_id += 2
    if large_objects:
        entries.append((next_id, True, "BLOBS", "BLOBS", None))
    out += pg_int(len(entries))
    for dump_id, has_data, desc, tag, namespace in entries:
        out += pg_int(dump_id) + pg_int(1 if has_data else 0) + pg_str("1259") + pg_str("16400")
        out += pg_str(tag) + pg_str(desc) + pg_int(3 if has_data else 2)
        out += pg_str(f"-- {desc} {tag}\n") + pg_str(None) + pg_str("COPY x FROM stdin;\n" if has_data else None)
        out += pg_str(namespace) + pg_str(None)
        if version >= (1, 14, 0):
            out += pg_str("heap" if desc == "TABLE" else None)
        if version >= (1, 16, 0):
            out += pg_int(ord("r") if desc == "TABLE" else 0)
        out += pg_str("postgres") + pg_str("false")
        if desc == "TABLE DATA":
            out += pg_str(str(dump_id - 1))
        out += pg_str(None)
        out += bytes([OFFSET_POS_NOT_SET if has_data else OFFSET_NO_DATA]) + bytes(8)
    for (dump_id, has_data, desc, _tag, _ns), table in zip(entries[1::2], tables, strict=True):
        assert has_data and desc == "TABLE DATA"
        out += bytes([BLK_DATA]) + pg_int(dump_id)
        for chunk in _chunks(table):
            out += pg_int(len(chunk)) + chunk
        out += pg_int(0)
    if large_objects:
        out += bytes([BLK_BLOBS]) + pg_int(next_id)
        for oid, content in enumerate(large_objects, start=16384):
            out += pg_int(oid)
            if content:
                out += pg_int(len(content)) + content
            out += pg_int(0)
        out += pg_int(0)
    return bytes(out)
