"""Ids without a system call per id: UUIDv7 layout (time-ordered), the random part drawn once per process.

    new_id()   # '0192f3a4-5b6c-7d8e-9f00-0000000a1b2c'

Layout: 48-bit Unix milliseconds | version 7 | 42 random bits fixed per process | 32-bit counter (variant bits
in place). Ids of one process never repeat (the counter); two processes collide only if they draw the same 42
random bits in the same millisecond with the same counter. A forked child draws its own prefix.
"""

from __future__ import annotations

import itertools
import os
import time

_prefix = 0
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix = int.from_bytes(os.urandom(6), "big") & ((1 << 42) - 1)
    _counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


_reseed()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A new UUIDv7-shaped id (a counter step and a clock read; no syscall for randomness)."""
    ms = time.time_ns() // 1_000_000
    count = next(_counter) & 0xFFFFFFFF
    rand_a = _prefix >> 30  # 12 bits
    rand_b = ((_prefix & ((1 << 30) - 1)) << 32) | count  # 62 bits
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
