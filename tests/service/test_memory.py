"""Start-up memory given back: the pages of a file's read-only mappings leave the process's
RSS and come back when read; only the compiler's read-only mappings are chosen; the arena cap
defers to the environment."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from firmware.service.memory import COMPILER_LIBRARIES, file_mappings, limit_malloc_arenas

MAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 42 /venv/llvmlite/binding/libllvmlite.so
7f0000100000-7f0004000000 r-xp 00100000 08:01 42 /venv/llvmlite/binding/libllvmlite.so
7f0004000000-7f0004010000 rw-p 04000000 08:01 42 /venv/llvmlite/binding/libllvmlite.so
7f0005000000-7f0005100000 r-xp 00000000 08:01 43 /usr/lib/libc.so.6
7f0006000000-7f0006100000 rw-p 00000000 00:00 0
"""


def test_only_the_compilers_read_only_mappings_are_chosen():
    assert file_mappings(MAPS, COMPILER_LIBRARIES) == [(0x7F0000000000, 0x100000),
                                                       (0x7F0000100000, 0x3F00000)]


def test_paged_out_pages_leave_the_rss_and_come_back_when_read(tmp_path):
    # A file only the probe maps (the compiler's pages are shared with this test's own
    # process, which imported numba too, and shared pages rightly stay).
    blob = tmp_path / "code.bin"
    blob.write_bytes(bytes(range(256)) * (64 * 2**20 // 256))
    probe = textwrap.dedent("""
        import json, mmap, sys
        from firmware.service.memory import page_out, resident_bytes
        with open(sys.argv[1], "rb") as f:
            view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        def touch():
            return sum(view[i] for i in range(0, len(view), mmap.PAGESIZE))
        touch()
        before = resident_bytes()
        freed = page_out(("code.bin",))
        after = resident_bytes()
        touch()
        print(json.dumps({"before": before, "after": after, "freed": freed,
                          "again": resident_bytes()}))
    """)
    out = subprocess.run([sys.executable, "-c", probe, str(blob)], capture_output=True,
                         text=True, check=True, timeout=120)
    rss = json.loads(out.stdout)
    assert rss["freed"] > 48 * 2**20 and rss["after"] < rss["before"] - 48 * 2**20
    assert rss["again"] > rss["after"] + 48 * 2**20, "read again, the pages are back"


def test_the_arena_cap_defers_to_malloc_arena_max(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False
