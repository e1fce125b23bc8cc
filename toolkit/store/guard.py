"""Bounds on what one store write may cost: LadybugDB's buffer pool, process memory, file growth.

LadybugDB sizes its buffer pool from the machine's RAM by default (80%), so a write that
goes wrong can take the whole machine before anything reports it. Here the pool is capped
and a watchdog thread stops a write whose process RSS or store files run away; the write
then rolls back like any failed write and the user gets one line saying which limit tripped.

Limits (bytes, from the environment): APD_STORE_MEMORY (buffer pool; default a quarter of
RAM, at most 4 GB), APD_STORE_MAX_RSS (default 75% of RAM), APD_STORE_MAX_GROWTH (default
20x the frames being written + 1 GB).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from toolkit.errors import ApdError

GB = 1 << 30
POLL_SECONDS = 0.2


def total_ram() -> int:
    """Physical memory in bytes (POSIX sysconf)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _env_bytes(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ApdError(f"{name} must be a number of bytes (got {raw!r})") from None
    if value <= 0:
        raise ApdError(f"{name} must be a positive number of bytes (got {raw!r})")
    return value


def buffer_pool_bytes() -> int:
    """LadybugDB buffer pool: APD_STORE_MEMORY, else a quarter of RAM capped at 4 GB."""
    return _env_bytes("APD_STORE_MEMORY", min(total_ram() // 4, 4 * GB))


def max_rss_bytes() -> int:
    return _env_bytes("APD_STORE_MAX_RSS", total_ram() * 3 // 4)


def max_growth_bytes(input_bytes: int) -> int:
    return _env_bytes("APD_STORE_MAX_GROWTH", 20 * input_bytes + GB)


def rss_bytes() -> int:
    """This process's resident set size, from /proc (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


# The files LadybugDB keeps beside a store `X`: X.wal, X.shadow, X.checkpoint. Anything else
# named X.* is someone else's (a user's X.notes, a copy X.bak) and never the store's.
SIDE_SUFFIXES = (".wal", ".shadow", ".checkpoint")


def store_files(path: str | os.PathLike) -> list[Path]:
    """The store's main file and those of its side files that exist now."""
    p = Path(path)
    return [f for f in (p, *(p.with_name(p.name + s) for s in SIDE_SUFFIXES)) if f.is_file()]


def store_bytes(path: str | os.PathLike) -> int:
    """Bytes of a LadybugDB store: the main file and its side files."""
    return sum(_size(f) for f in store_files(path))


def _size(f: Path) -> int:
    """A side file's size; 0 once LadybugDB has removed it (lock and intent files come and go)."""
    try:
        return f.stat().st_size if f.is_file() else 0
    except FileNotFoundError:
        return 0


class Watchdog:
    """Polls RSS and store size while a write runs; on a breach records why and calls `stop`."""

    def __init__(self, path: str, input_bytes: int, stop: Callable[[], None]):
        self.path = path
        self.stop_write = stop
        self.max_rss = max_rss_bytes()
        self.max_growth = max_growth_bytes(input_bytes)
        self.start_size = store_bytes(path)
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="apd-store-watchdog", daemon=True)

    def check(self) -> str | None:
        """The breached limit as one line, or None."""
        rss = rss_bytes()
        if rss > self.max_rss:
            return (f"write stopped: process memory {rss / GB:.1f} GB passed the limit {self.max_rss / GB:.1f} GB "
                    "(APD_STORE_MAX_RSS)")
        grown = store_bytes(self.path) - self.start_size
        if grown > self.max_growth:
            return (f"write stopped: store files grew {grown / GB:.1f} GB, past the limit {self.max_growth / GB:.1f} GB "
                    "(APD_STORE_MAX_GROWTH)")
        return None

    def _loop(self) -> None:
        while not self._done.wait(POLL_SECONDS):
            reason = self.check()
            if reason:
                self.reason = reason
                self.stop_write()
                return

    def __enter__(self) -> "Watchdog":
        self.reason = self.check()  # already past a limit: the write does not start
        if self.reason is None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

