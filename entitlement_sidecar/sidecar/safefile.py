"""Reading files that someone else may have planted: regular files only, never blocking, capped.

The status directory is shared with the app containers and the key ring can be a mounted volume,
so a path may hold a FIFO, a device or a huge file. Opening a FIFO for reading blocks until a
writer appears, which would hang an exec probe or the probe server. So files are opened with
`O_NONBLOCK`, checked to be regular files before any read, and read up to a cap. Lean (os, stat).
"""

from __future__ import annotations

import os
import stat


class NotReadable(Exception):
    """Why the file cannot be used (one line, safe to print)."""


def read_regular(path: str, cap: int) -> bytes:
    """At most `cap` bytes of the regular file `path`; `NotReadable` for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise NotReadable(exc.strerror or str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotReadable("not a regular file")
        chunks = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise NotReadable(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > cap:
        raise NotReadable(f"larger than {cap} bytes")
    return b"".join(chunks)
