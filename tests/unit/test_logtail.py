"""Reading a process's output file: the last lines, what followed an offset, always within the byte bound."""

from __future__ import annotations

from pathlib import Path

from draas_actors.logtail import read_after, tail


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_the_tail_is_the_last_lines_and_the_offset_is_the_end_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "out.log", "one\ntwo\nthree\n")
    found = tail(path, 2, 1024)
    assert (found.data, found.offset, found.truncated) == (b"two\nthree\n", 14, True)
    assert tail(path, 10, 1024).truncated is False


def test_the_tail_never_holds_more_than_the_byte_bound_nor_a_partial_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "out.log", "x" * 100 + "\n" + "short\nlast\n")
    found = tail(path, 100, 12)
    assert found.data == b"short\nlast\n"
    assert found.truncated is True
    assert found.offset == path.stat().st_size


def test_a_missing_file_is_an_empty_answer_at_offset_zero(tmp_path: Path) -> None:
    for found in (tail(tmp_path / "none", 5, 100), read_after(tmp_path / "none", 7, 100)):
        assert (found.data, found.offset, found.truncated) == (b"", 0, False)


def test_after_reads_what_was_appended_in_bounded_pieces(tmp_path: Path) -> None:
    path = write(tmp_path / "out.log", "abc")
    first = read_after(path, 0, 1024)
    assert (first.data, first.offset) == (b"abc", 3)
    with open(path, "ab") as handle:
        handle.write(b"defgh")
    piece = read_after(path, first.offset, 3)
    assert (piece.data, piece.offset, piece.truncated) == (b"def", 6, True)
    rest = read_after(path, piece.offset, 3)
    assert (rest.data, rest.offset, rest.truncated) == (b"gh", 8, False)
    assert read_after(path, rest.offset, 3).data == b""


def test_a_file_shorter_than_the_offset_was_replaced_and_is_read_from_its_start(tmp_path: Path) -> None:
    path = write(tmp_path / "out.log", "new\n")
    found = read_after(path, 1000, 1024)
    assert (found.data, found.offset) == (b"new\n", 4)
