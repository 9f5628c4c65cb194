"""``write(2)`` that keeps Python's interpreter lock (GIL).

``os.write`` releases the GIL around the system call, which lets other
threads run meanwhile. For a writer that holds a lock other threads
append through (:class:`~shoebox.roll_manager.WritingRollManager`) that is
what makes several threads slow: while the holder is in the kernel for a
microsecond, another thread takes the GIL, runs up to the same lock and
sleeps on it; the lock is then handed from thread to thread, each hand-off
a sleep and a wake-up (a lock convoy, issue 10: 3.5 times slower on 4
threads than on 1). Keeping the GIL during the call makes the locked
section atomic for the other threads: they never find the lock taken, but
for the rare switch the interpreter forces inside it.

The price: while the kernel takes the bytes (about a microsecond into the
page cache), no other Python thread of the process runs; if the kernel
stalls the write (a saturated disk throttling writers, a network file
system), every thread stalls with it, not only those writing.

The call goes through :mod:`ctypes` (a ``PyDLL`` function keeps the GIL),
loaded on first use, so a process whose threads never contend never
imports it. Where ``ctypes`` or ``write`` cannot be had, ``os.write`` is
used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

Write = Callable[[int, bytes], int]

_loaded: Write | None = None


def _load() -> Write:
    try:
        import ctypes

        libc_write: Any = ctypes.PyDLL(None).write
    except (ImportError, OSError, AttributeError):
        return os.write
    libc_write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
    libc_write.restype = ctypes.c_ssize_t

    def write(fd: int, data: bytes) -> int:
        if type(data) is not bytes:  # c_char_p takes bytes only
            return os.write(fd, data)
        written: int = libc_write(fd, data, len(data))
        if written < 0:
            # errno is not kept (asking ctypes to keep it costs every
            # call): os.write repeats the call, and raises the error or,
            # after EINTR, succeeds.
            return os.write(fd, data)
        return written

    return write


def gil_write() -> Write:
    """A function like ``os.write(fd, data)`` whose system call keeps the
    GIL (``os.write`` itself where that cannot be had)."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded
