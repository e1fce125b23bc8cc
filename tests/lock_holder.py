"""Another process holding a store's write lock, for the tests of locked stores."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

_HOLD = ("import ladybug, sys, time; db = ladybug.Database(sys.argv[1]); print('held', flush=True); "
         "time.sleep(float(sys.argv[2])) if sys.argv[2] else sys.stdin.read()")


@contextmanager
def lock_held(path: str, seconds: float | None = None) -> Iterator[subprocess.Popen]:
    """Yield once a child process has the store at `path` open for writing. It lets go after
    `seconds`, or when the block ends; the child is always reaped."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, path, "" if seconds is None else str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        if holder.poll() is None and seconds is not None:
            holder.kill()
        holder.wait(60)
