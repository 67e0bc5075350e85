"""Identifiers: UUIDv7 strings, which sort in creation order (the last ranking tie-break)."""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_last_ms = -1
_counter = 0


def uuid7(now_ms: int) -> str:
    """RFC 9562 UUIDv7, monotonic within this process: ids minted in the same millisecond carry
    an increasing 12-bit counter (method 1 of RFC 9562 §6.2). Hand-written because uuid.uuid7
    arrives only with Python 3.14."""
    global _last_ms, _counter
    ms = int(now_ms)
    random = int.from_bytes(os.urandom(10), "big")  # one system call: the counter's start and the tail
    with _lock:
        if ms <= _last_ms:
            ms, _counter = _last_ms, _counter + 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms, _counter = ms + 1, 0
        else:
            _counter = random >> 69  # random start below 0x800, room to count up
        _last_ms = ms
        counter = _counter
    tail = random & ((1 << 62) - 1)
    h = f"{ms & ((1 << 48) - 1):012x}7{counter:03x}{0b10 << 62 | tail:016x}"  # formatted by hand: 5x cheaper
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
