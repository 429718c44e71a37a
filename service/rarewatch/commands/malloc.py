"""glibc's malloc told to keep the memory `rarewatch match` frees, for the next block to reuse.

A large input is matched in blocks of about 1 MiB: each block's bytes, its text, its lines' fold and its
output are a few buffers of a megabyte or so, made and freed again block after block. glibc serves such
a buffer with its own `mmap` and gives it back on `free` (and trims the heap's top when it frees
enough), so each block's buffers are new pages to fault in: with `--jobs 2` about 130,000 page faults
over `bench_match_cli.py`'s file, about a tenth of the run's CPU, against about 26,000 when freed memory
is kept (its workers are forked, so they inherit the setting). The price is a peak a few MiB higher.
"""

from __future__ import annotations

import os

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # the most glibc takes on 64-bit systems: every buffer of a block is below it
_TRIM_THRESHOLD = 256 << 20  # free memory kept at the heap's top before it is given back


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve buffers below 32 MiB from its heap and keep up to 256 MiB free at the
    heap's top, rather than map and unmap them one by one. True when set; False elsewhere than glibc
    (another C library, another system), where nothing changes."""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # not a name this system knows
        return False
    if not glibc or not glibc.startswith("glibc"):
        return False
    import ctypes  # here: only where glibc is there to be asked

    mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
