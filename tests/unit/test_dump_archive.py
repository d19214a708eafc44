"""The custom-format reader on archives built the way pg_dump writes them, cut every way a pipe can cut them."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.backup.dump_archive import LARGE_OBJECTS_KEY, ArchiveFormatError, ArchiveReader, ArchiveSummary
from tests.archive_writer import Table, pg_int, write_archive

# Text that COPY must escape, and values that look like its own markers once escaped.
TRICKY = ["", "\n", "\\", "\t", "\r", "\\.", "\\N", "a\nb", "\\.\n", "x" * 300, "é€😀"]
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
values = st.one_of(st.none(), st.sampled_from(TRICKY), text)


@st.composite
def tables(draw: st.DrawFn, index: int = 0) -> Table:
    width = draw(st.integers(0, 3))  # zero columns: every row is an empty line
    rows = draw(st.lists(st.lists(values, min_size=width, max_size=width), max_size=60))
    cuts = draw(st.one_of(st.just([]), st.lists(st.integers(1, 700), min_size=1, max_size=40)))
    return Table("public", f"t{index}", rows, cuts)


@st.composite
def archives(draw: st.DrawFn) -> tuple[list[Table], list[bytes]]:
    count = draw(st.integers(0, 4))
    return [draw(tables(i)) for i in range(count)], draw(st.lists(st.binary(max_size=300), max_size=3))


def read(data: bytes, cuts: list[int] | None = None) -> ArchiveSummary:
    reader = ArchiveReader()
    pos = 0
    for cut in cuts or []:
        reader.feed(data[pos : pos + cut])
        pos += cut
    reader.feed(data[pos:])
    return reader.finish()


def expected_counts(tables: list[Table], large_objects: list[bytes]) -> dict[str, int]:
    counts = {f"{t.schema}.{t.name}": len(t.rows) for t in tables}
    if large_objects:
        counts[LARGE_OBJECTS_KEY] = len(large_objects)
    return counts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.lists(st.integers(1, 5000), max_size=30), st.sampled_from([(1, 14, 0), (1, 16, 0)]))
def test_counts_every_row_however_the_stream_is_cut(
    archive: tuple[list[Table], list[bytes]], cuts: list[int], version: tuple[int, int, int]
) -> None:
    tables, large_objects = archive
    data = write_archive(tables, large_objects, version)
    summary = read(data, cuts)
    assert expected_counts(tables, large_objects) == summary.table_counts()
    assert len(tables) + (1 if large_objects else 0) == summary.data_blocks


@pytest.mark.parametrize("length", [10, 0x0A0A, 0x0A00 + 7, 266, 2560])
def test_rows_whose_length_bytes_hold_a_newline(length: int) -> None:
    """A chunk length such as 10 puts a newline byte into the framing; it is not a row."""
    row = ["y" * (length - 1)]  # plus its newline: a chunk of exactly ``length`` bytes
    table = Table("s", "wide", [row] * 3000 + [["short"]] * 2000)
    data = write_archive([table])
    assert pg_int(length) in data
    assert {"s.wide": 5000} == read(data).table_counts()
    assert {"s.wide": 5000} == read(data, [3] * 2000).table_counts()  # chunk by chunk, no runs


def test_reads_real_layout_one_byte_at_a_time() -> None:
    tables = [Table("public", "t", [["1", "a\nb"], ["2", None]]), Table("public", "none", [])]
    data = write_archive(tables, [b"\x00\n\x05\x00\x00\x00"])
    reader = ArchiveReader()
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
    assert {"public.t": 2, "public.none": 0, LARGE_OBJECTS_KEY: 1} == reader.finish().table_counts()


@settings(max_examples=60, deadline=None)
@given(archives(), st.data())
def test_a_truncated_archive_is_an_error_never_a_count(
    archive: tuple[list[Table], list[bytes]], data: st.DataObject
) -> None:
    whole = write_archive(*archive)
    cut = data.draw(st.integers(0, len(whole) - 1))
    with pytest.raises(ArchiveFormatError):
        read(whole[:cut])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"--\n-- PostgreSQL database dump\n", "not a pg_dump custom-format archive"),
        (b"PGDMP\x01\x11\x00\x04\x08\x01", "archive version 1.17.0 is not one"),
        (b"PGDMP\x01\x10\x00\x04\x08\x03", "is not the custom format"),
        (b"PGDMP\x01\x10\x00\x04\x08\x01\x01", "compressed by pg_dump"),
    ],
)
def test_what_is_not_a_readable_archive_says_why(data: bytes, message: str) -> None:
    archive = write_archive([Table("public", "t", [["1"]])])
    with pytest.raises(ArchiveFormatError, match=message):
        read(data + archive[len(data) :])


def test_a_data_block_the_toc_does_not_announce_is_refused() -> None:
    archive = write_archive([Table("public", "t", [["1"]])])
    forged = archive + bytes([1]) + pg_int(999) + pg_int(0)
    with pytest.raises(ArchiveFormatError, match="dump id 999, which the TOC does not list"):
        read(forged)


def test_data_ending_inside_a_row_is_refused() -> None:
    table = Table("public", "t", [["1"]], cuts=[1])
    archive = write_archive([table]).replace(b"\\.\n\n\n", b"\\.\n\nX")
    with pytest.raises(ArchiveFormatError, match=r"TABLE DATA public\.t ending inside a row"):
        read(archive)
