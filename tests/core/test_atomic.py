"""Atomic writes: readers see the old or the new document, never a torn one."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from entitlement_sidecar.atomic import write_atomic


def test_write_creates_the_file_with_the_mode(tmp_path: Path) -> None:
    """A new file gets the content and the requested permissions."""
    target = tmp_path / "status.json"
    write_atomic(target, b'{"version": 1}', mode=0o640)
    assert target.read_bytes() == b'{"version": 1}'
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_leaves_no_temp_files_behind(tmp_path: Path) -> None:
    """Only the target remains in the directory after repeated writes."""
    target = tmp_path / "status.json"
    for n in range(5):
        write_atomic(target, str(n).encode())
    assert os.listdir(tmp_path) == ["status.json"]
    assert target.read_text() == "4"


def test_a_missing_directory_fails_loudly(tmp_path: Path) -> None:
    """When the directory is gone the write fails loudly and nothing half-written appears."""
    target = tmp_path / "missing-dir" / "status.json"
    with pytest.raises(FileNotFoundError):
        write_atomic(target, b"new")


def test_failed_write_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails before the rename (disk full at fsync) leaves the old file and no temp."""
    target = tmp_path / "status.json"
    write_atomic(target, b"old")

    def disk_full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert (os.listdir(tmp_path), target.read_bytes()) == (["status.json"], b"old")


def test_concurrent_readers_never_see_a_partial_document(tmp_path: Path) -> None:
    """A reader racing many writers only ever reads one of the complete documents."""
    target = tmp_path / "status.json"
    documents = [bytes([65 + n]) * 50_000 for n in range(4)]
    write_atomic(target, documents[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(200):
        write_atomic(target, documents[n % 4])
    stop.set()
    thread.join()
    assert seen <= set(documents)
