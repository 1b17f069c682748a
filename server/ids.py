"""Time-ordered 64-bit ids, Mastodon style: milliseconds since the epoch << 16 | 16 low bits.

Ordering by id is ordering by creation time, so ``max_id``/``min_id`` pagination works on the
primary key alone. Within a process ids are strictly increasing; across processes the low 16
bits start from a random value each millisecond, which keeps collisions between several web
processes improbable (a collision fails the insert on the primary key, it never merges rows).
"""

from __future__ import annotations

import secrets
import threading
import time

_lock = threading.Lock()
_last = 0


def new_id(now_ms: int | None = None) -> int:
    """Return a new id, greater than every id this process returned before."""
    global _last
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    candidate = (ms << 16) | secrets.randbelow(1 << 15)
    with _lock:
        if candidate <= _last:
            candidate = _last + 1
        _last = candidate
        return candidate


def id_at(ms: int) -> int:
    """The smallest id that could be issued at ``ms``: a pagination bound for a timestamp."""
    return ms << 16


def new_ids(count: int) -> list[int]:
    """``count`` new ids at once, consecutive after one fresh random start (for bulk inserts:
    one random draw instead of one per row)."""
    global _last
    if count <= 0:
        return []
    with _lock:
        ms = int(time.time() * 1000)
        start = max((ms << 16) | secrets.randbelow(1 << 15), _last + 1)
        _last = start + count - 1
    return list(range(start, start + count))
