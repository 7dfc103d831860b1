"""Give back memory `pafw run` holds but no longer uses, once its kernels run.

Two things dominate an appliance's resident memory after start-up and are not needed again:

- LLVM's machine code (``libllvmlite.so``, 100 MB resident on a PC): loading it runs static
  constructors spread across the whole library, so nearly every page of it is faulted in,
  although after the kernels are loaded from numba's cache nothing calls into it until a
  kernel has to be compiled. Those pages are clean file pages: ``madvise(MADV_PAGEOUT)``
  drops them from this process at once (the kernel would under memory pressure anyway, later
  and after evicting more useful pages); should LLVM run again they are read back from the
  file.
- memory glibc's allocator keeps after start-up (configuration, compilation): ``malloc_trim``
  returns the free pages of every arena.

``limit_malloc_arenas`` caps glibc's per-thread arenas (by default up to eight per core, each
holding its own free memory) for the threads started after it; the systemd unit also sets
``MALLOC_ARENA_MAX`` so the cap holds from the first allocation.

Linux with glibc only; elsewhere every function does nothing and says so (returns 0/False).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
from pathlib import Path

log = logging.getLogger("pafw.memory")

#: shared libraries whose code is needed only to compile kernels
COMPILER_LIBRARIES = ("libllvmlite.so",)
#: glibc's mallopt parameter for the arena cap
M_ARENA_MAX = -8
#: madvise advice: reclaim these pages now (Linux 5.4)
MADV_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    return libc


def resident_bytes(pid: int | str = "self") -> int | None:
    """Resident set size of ``pid`` from /proc (None where there is no /proc)."""
    try:
        text = Path(f"/proc/{pid}/statm").read_text(encoding="ascii")
    except OSError:
        return None
    return int(text.split()[1]) * PAGE


def file_mappings(maps_text: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, length) of every read-only mapping of a file named in ``names``, from the text
    of /proc/PID/maps (writable mappings hold relocated data and are left alone)."""
    found: list[tuple[int, int]] = []
    for line in maps_text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1]:
            continue
        if Path(fields[5].strip()).name not in names:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        found.append((start, end - start))
    return found


def page_out(names: tuple[str, ...]) -> int:
    """Drop this process's resident pages of the read-only mappings of the files ``names``;
    returns how many bytes of RSS that freed (0 if nothing could be done). Pages another
    process maps too stay where they are."""
    libc = _libc()
    try:
        maps = Path("/proc/self/maps").read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    mappings = file_mappings(maps, names)
    if libc is None or not mappings:
        return 0
    before = resident_bytes() or 0
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for start, length in mappings:
        if libc.madvise(start, length, MADV_PAGEOUT) != 0:
            log.debug("madvise(MADV_PAGEOUT) refused: %s", os.strerror(ctypes.get_errno()))
            return 0
    return max(0, before - (resident_bytes() or before))


def page_out_compiler() -> int:
    """``page_out`` of the compiler's code (``COMPILER_LIBRARIES``)."""
    return page_out(COMPILER_LIBRARIES)


def trim_heap() -> int:
    """Return the allocator's free pages to the system; returns the bytes of RSS freed."""
    libc = _libc()
    if libc is None:
        return 0
    before = resident_bytes() or 0
    libc.malloc_trim(0)
    return max(0, before - (resident_bytes() or before))


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (for threads that allocate later); True if
    applied. ``MALLOC_ARENA_MAX`` in the environment wins: it is left as set."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def release_start_up_memory() -> int:
    """Everything above, once the kernels are loaded and a frame went through; returns the
    bytes of RSS freed."""
    freed = page_out_compiler() + trim_heap()
    log.info("released %.1f MB of start-up memory (compiler code, free heap)", freed / 2**20)
    return freed
