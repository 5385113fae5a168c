"""Large payloads through shared memory: one file in ``/dev/shm`` per message, read once.

The sender writes a segment and sends only its name; the receiver maps it (zero-copy), unlinks
the name at once, and keeps the pages alive only as long as objects read from them exist. So a
segment that was read never leaks, whatever happens afterwards.

We use plain files in ``/dev/shm`` (what ``shm_open`` does on Linux) rather than
``multiprocessing.shared_memory``: on Python < 3.13 the latter registers every segment with the
creator's resource tracker, which then "cleans up" (and warns about) segments the receiver
already owns. Where ``/dev/shm`` does not exist the temp directory is used (page cache).

    >>> name = write_segment([b"hello ", b"world"])
    >>> bytes(read_segment(name, 11))
    b'hello world'
    >>> list_segments(pid=os.getpid())
    []

Segment names are ``dspex-<creator pid>-<random>``; ``sweep_segments()`` removes those whose
creator died before anybody read them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "SHM_DIR",
    "create_segment",
    "list_segments",
    "new_segment_name",
    "read_segment",
    "segment_size",
    "sweep_segments",
    "unlink_segment",
    "write_segment",
]

SHM_DIR = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
_PREFIX = "dspex-"
_NAME = re.compile(r"^dspex-(\d+)-[0-9a-f]{16}$")


def _path(name: str) -> Path:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a dspex shared-memory segment name "
                         "(expected 'dspex-<pid>-<16 hex digits>').")
    return SHM_DIR / name


def write_segment(buffers: Sequence[memoryview | bytes]) -> str:
    """Create a segment holding ``buffers`` back to back; return its name.

        name = write_segment([payload])        # then send `name` and len(payload)
    """
    name = new_segment_name()
    size = sum(memoryview(b).nbytes for b in buffers)
    with create_segment(name, size) as file:
        for buffer in buffers:
            file.write(buffer)
    return name


@contextlib.contextmanager
def create_segment(name: str, size: int) -> Iterator[BinaryIO]:
    """Create segment ``name`` of ``size`` bytes; yield it as an unbuffered binary file.

    Unwritten gaps read as zeros. If the block raises, the segment is removed. Writing through
    the file (``write`` syscalls) is about twice as fast as faulting pages in through ``mmap``.

        >>> name = new_segment_name()
        >>> with create_segment(name, 4) as file:
        ...     _ = file.write(b"data")
        >>> bytes(read_segment(name, 4))
        b'data'
    """
    if size <= 0:
        raise ValueError(f"A segment needs a positive size, not {size}.")
    fd = os.open(_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        with open(fd, "r+b", buffering=0) as file:
            yield file
            os.ftruncate(file.fileno(), size)
    except BaseException:
        unlink_segment(name)
        raise


def new_segment_name() -> str:
    """A fresh, unused segment name owned by this process."""
    return f"{_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"


def read_segment(name: str, size: int) -> memoryview:
    """Map segment ``name`` (zero-copy, private copy-on-write), unlink it, view ``size`` bytes.

    The pages stay valid while the returned view (or anything built on it) is alive. Raises
    ``FileNotFoundError`` when the segment is gone and ``ValueError`` when it is smaller than
    ``size``; the name is unlinked in every case.
    """
    path = _path(name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileNotFoundError(f"Shared-memory segment {name!r} does not exist: it was "
                                "already read, swept, or its sender died.") from None
    try:
        actual = os.fstat(fd).st_size
        if actual < size or size < 0:
            raise ValueError(f"Shared-memory segment {name!r} holds {actual} bytes but the "
                             f"frame says {size}; the frame is corrupt.")
        if size == 0:
            return memoryview(b"")
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
        unlink_segment(name)
    return memoryview(mapped)


def segment_size(name: str) -> int:
    """Size in bytes of an existing segment."""
    return _path(name).stat().st_size


def unlink_segment(name: str) -> bool:
    """Remove segment ``name``; True if it existed. Mapped views stay valid."""
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        return False
    return True


def list_segments(pid: int | None = None) -> list[str]:
    """Names of existing dspex segments, optionally only those created by process ``pid``."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return []
    found = []
    for name in names:
        match = _NAME.match(name)
        if match and (pid is None or int(match.group(1)) == pid):
            found.append(name)
    return sorted(found)


def sweep_segments() -> int:
    """Unlink segments whose creator process no longer runs; return how many.

    A segment whose sender died before the receiver read it would otherwise stay in memory
    until reboot. Call it when a worker crashed, or at pool start-up.
    """
    import psutil

    removed = 0
    for name in list_segments():
        pid = int(_NAME.match(name).group(1))
        if not psutil.pid_exists(pid) and unlink_segment(name):
            removed += 1
    return removed
