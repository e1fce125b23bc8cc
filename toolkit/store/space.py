"""Disk space for an embedded store: checked before a write starts, and a full disk said in one line.

When its filesystem fills during a checkpoint, LadybugDB 0.22 throws an IOException from a
place that ends in std::terminate: the process aborts (exit 134), which Python cannot catch,
and leaves a cut-off write-ahead log. So every write first estimates the bytes it will need
and compares them with the room left: the free space of the store's filesystem (os.statvfs)
and, under a file-size limit (RLIMIT_FSIZE, `ulimit -f`), what the main file may still grow.

The estimate, from the peak growth of a store's files (an untrained 64-64-64-64-64-10
MLP over 60k random instances, 31.6 MB of frames): a new run peaked at 25.9 MB, a replace of
the same run at 27.9 MB, a drop of it at 25.9 MB (its deletes are logged), `apd split` of it
at 5.4 MB. Hence: the frames' bytes, plus 1.5x the deleted rows' share of the file, plus
MARGIN for the log and checkpoint pages of any write.
"""
from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from toolkit.store.base import StoreError

MB = 1 << 20
MARGIN = 4 * MB
DELETE_FACTOR = 1.5
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_bytes(frame_bytes: int, deleted_bytes: int) -> int:
    """Bytes a write may add to the store's files at its peak (see the module docstring)."""
    return frame_bytes + int(DELETE_FACTOR * deleted_bytes) + MARGIN


def room(path: str | os.PathLike) -> tuple[int, str]:
    """Bytes the store at `path` may still grow by, and what limits it, in words."""
    p = Path(path).absolute()
    folder = next(f for f in (p.parent, *p.parent.parents) if f.exists())
    st = os.statvfs(folder)
    free, where = st.f_bavail * st.f_frsize, _filesystem(folder)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        left = max(0, limit - (p.stat().st_size if p.is_file() else 0))
        if left < free:
            return left, "the file size limit (ulimit -f)"
    return free, where


def check(path: str | os.PathLike, needed: int, what: str = "this write") -> None:
    """StoreError in one line when `needed` bytes do not fit next to the store at `path`."""
    free, where = room(path)
    if needed > free:
        raise StoreError(f"not enough disk space for store {path}: {what} needs about {needed / MB:.1f} MB "
                         f"({needed} bytes), {where} leaves {free / MB:.1f} MB ({free} bytes): "
                         "free some space or use another --store")


def is_full(exc: OSError) -> bool:
    return exc.errno in FULL


def os_error(path: str | os.PathLike, exc: OSError, doing: str) -> StoreError:
    """An OSError met while `doing` something to the store at `path`, as one line."""
    if is_full(exc):
        free, where = room(path)
        return StoreError(f"disk full: store {path}: {doing} failed, {where} leaves {free} bytes: "
                          "free some space and retry")
    return StoreError(f"store {path}: {doing} failed: {exc.strerror or exc}")


def _filesystem(folder: Path) -> str:
    """`the tmpfs filesystem mounted at /mnt/x` for the mount holding `folder`."""
    mount = folder.resolve()
    while not os.path.ismount(mount):
        mount = mount.parent
    kind = ""
    try:
        with open("/proc/self/mounts") as f:
            kinds = {fields[1]: fields[2] for fields in (line.split() for line in f) if len(fields) > 2}
        kind = kinds.get(str(mount), "") + " "
    except OSError:
        pass
    return f"the {kind}filesystem mounted at {mount}"
