"""The store's identity and the checks at start-up (storefile.py), on real SQLite files.

Each damage is made the way it happens: a control plane commits into the WAL and is stopped without a checkpoint
(as a SIGKILL leaves it), then a file is emptied, deleted or overwritten.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from draas_actors.storefile import StoreError, prepare_store


def _store_with_uncheckpointed_rows(path: Path, rows: int = 20) -> str:
    """A store whose last commits are only in its WAL, as a killed control plane leaves it."""
    identity = prepare_store(str(path))
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    # Keep the WAL: copy the files away while the connection is open (closing would checkpoint them).
    copies = {p: p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)}
    db.close()
    for copy, content in copies.items():
        copy.write_bytes(content)
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    return identity.store_id


def test_a_new_store_gets_an_identity_that_stays_across_starts(tmp_path: Path) -> None:
    path = tmp_path / "draas.sqlite3"
    first = prepare_store(str(path))
    second = prepare_store(str(path))
    assert len(first.store_id) == 32 and first.store_id == second.store_id
    assert second.incarnation == first.incarnation + 1
    assert path.with_name("draas.sqlite3.marker").exists()


def test_the_data_survives_the_check_when_nothing_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "draas.sqlite3"
    store_id = _store_with_uncheckpointed_rows(path)
    assert prepare_store(str(path)).store_id == store_id
    assert sqlite3.connect(str(path)).execute("SELECT COUNT(*) FROM t").fetchone() == (20,)


def _empty(path: Path) -> None:
    path.write_bytes(b"")
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)


def _deleted_beside_its_wal(path: Path) -> None:
    path.unlink()


def _deleted_with_everything_but_its_marker(path: Path) -> None:
    for side in ("", "-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)


def _garbled_wal_header(path: Path) -> None:
    wal = path.with_name(path.name + "-wal")
    content = bytearray(wal.read_bytes())
    content[8:16] = b"\xff" * 8  # the page size and checkpoint sequence: the header checksum no longer matches
    wal.write_bytes(bytes(content))


def _garbled_database(path: Path) -> None:
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # page 1 is then read from the file, not from the WAL
    db.close()
    with path.open("r+b") as handle:
        handle.write(b"this is not a SQLite database at all")


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_empty, "empty"),
        (_deleted_beside_its_wal, "missing"),
        (_deleted_with_everything_but_its_marker, "missing"),
        (_garbled_wal_header, "write-ahead log"),
        (_garbled_database, "damaged"),
    ],
    ids=["zero-length", "deleted beside its WAL", "deleted", "garbled WAL header", "garbled database"],
)
def test_a_damaged_or_missing_store_is_refused_in_one_line_naming_the_file(
    tmp_path: Path, damage: object, says: str
) -> None:
    path = tmp_path / "draas.sqlite3"
    _store_with_uncheckpointed_rows(path)
    damage(path)  # type: ignore[operator]
    with pytest.raises(StoreError) as refused:
        prepare_store(str(path))
    message = refused.value.message
    assert str(path) in message and says in message and "--fresh-store" in message
    assert "\n" not in message


def test_fresh_store_moves_the_damaged_files_aside_and_starts_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "draas.sqlite3"
    old_id = _store_with_uncheckpointed_rows(path)
    _garbled_wal_header(path)
    fresh = prepare_store(str(path), fresh=True)
    assert fresh.store_id != old_id
    kept = {p.name.split(".aside-")[0] for p in tmp_path.iterdir() if ".aside-" in p.name}
    assert {"draas.sqlite3", "draas.sqlite3-wal", "draas.sqlite3.marker"} <= kept
    assert prepare_store(str(path)).store_id == fresh.store_id


def test_a_store_restored_from_a_backup_gets_a_new_identity(tmp_path: Path) -> None:
    path = tmp_path / "draas.sqlite3"
    first = prepare_store(str(path))
    backup = path.read_bytes()
    prepare_store(str(path))  # it ran again after the backup
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)
    path.write_bytes(backup)
    restored = prepare_store(str(path))
    assert restored.store_id != first.store_id
    assert prepare_store(str(path)).store_id == restored.store_id  # and keeps it from then on


def test_a_store_from_before_identities_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "draas.sqlite3"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.commit()
    db.close()
    assert len(prepare_store(str(path)).store_id) == 32


def test_a_read_only_data_dir_is_refused_naming_the_path(read_only_dir: Path) -> None:
    with pytest.raises(StoreError) as refused:
        prepare_store(str(read_only_dir / "draas.sqlite3"))
    assert str(read_only_dir) in refused.value.message and "not writable" in refused.value.message
