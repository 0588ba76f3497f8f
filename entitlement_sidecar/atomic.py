"""Atomic file writes for documents that other processes read.

Another container reads the status document while we write it, and a crash may come at any
moment: readers must see the old document or the new one, never a torn or empty file (the bug
that bit ubbagent). So: write a temp file in the same directory, flush and fsync it, rename it
over the target, then fsync the directory so the rename itself survives a power loss.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False  # the lean `run` parent uses fsync_directory: no pathlib/tempfile there
if TYPE_CHECKING:
    from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that readers see either the old or the new content."""
    import tempfile

    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
