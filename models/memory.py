"""Give the heap memory freed after a model's forward passes back to the system.

Batches of varying size and length make torch allocate and free tensors of ever different
shapes through glibc's malloc, which keeps the freed chunks for reuse instead of returning
them: the shipped model's RSS grew from ~570 to ~1,150 MiB over 3,000 random batches of
1–64 comments, and a worker at 300 comments/s passed 1 GiB within ten minutes. `malloc_trim`
returns them; once every 4 calls it kept the same loop at ~610 MiB for ~1 % of its time
(bench/bench_pipeline.py and docs/ARCHITECTURE.md, "Memory"). Not glibc (macOS, musl): a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

#: Calls between two trims.
TRIM_EVERY = 4


def _libc_function(function: str) -> Callable | None:
    """A function of the C library (glibc: malloc_trim, mallopt); None where there is none."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    return _libc_function("malloc_trim")


class FreedMemoryReturner:
    """Call it after each model call: every `every`-th call it trims the heap."""

    def __init__(self, every: int = TRIM_EVERY,
                 trim: Callable[[int], int] | None | bool = True) -> None:
        self.every = every
        self.trim = _glibc_malloc_trim() if trim is True else (trim or None)
        self.calls = 0

    def __call__(self) -> bool:
        """True when it trimmed."""
        self.calls += 1
        if self.trim is None or self.calls % self.every:
            return False
        self.trim(0)
        return True


#: glibc's mallopt parameter number for the mmap threshold (malloc.h).
M_MMAP_THRESHOLD = -3
#: Blocks at least this big that no free chunk of the heap holds are mmapped, not heap-grown.
LARGE_BLOCK_BYTES = 32 * 1024


def map_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes: an allocation at least that big that no
    free chunk of the heap can hold gets its own mmap (returned to the system when freed)
    instead of growing the heap. True when set (glibc), False elsewhere.

    glibc starts at 128 KiB but raises the threshold to the size of each mmapped block freed,
    up to 32 MiB, after which it grows the heap for blocks of any size. The worker encodes,
    sends and reads page records of ever larger sizes (tens of KiB each): the heap grew for
    each bigger record, and the chunks the smaller ones left sat between live ones, where
    `malloc_trim` cannot return them (docs/ARCHITECTURE.md, "Memory"). A fixed threshold also
    stops the raising."""
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(M_MMAP_THRESHOLD, threshold) == 1
