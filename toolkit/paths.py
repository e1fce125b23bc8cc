"""Output paths checked before any work: a mistake in `--out` should cost nothing, not a
finished training run or ingest followed by a traceback."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from toolkit.errors import ApdError


def writable_path(path: str | os.PathLike, option: str) -> Path:
    """`path` as a Path if a file can be written there (its folders may not exist yet);
    otherwise an ApdError naming `option`. Probes by creating, then removing, a temp file."""
    p = Path(path)
    if p.is_dir():
        raise ApdError(f"{option} {p} is a directory: give a file path, e.g. {p / 'name'}")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ApdError(f"{option} {p}: {folder} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".apd-probe-"):
            pass
    except OSError as exc:
        raise ApdError(f"{option} {p}: cannot write in {folder} ({exc.strerror or exc})") from None
    if p.exists() and not os.access(p, os.W_OK):
        raise ApdError(f"{option} {p} exists and is not writable")
    return p


def writable_dir(path: str | os.PathLike, option: str) -> Path:
    """`path` as a Path if files can be written inside it (created if missing)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ApdError(f"{option} {p} is a file, not a directory")
    writable_path(p / "probe", option)
    return p


def output_file(path: str | os.PathLike, suffixes: tuple[str, ...], option: str = "--out") -> Path:
    """`path` if it names a file of one of `suffixes` in an existing, writable folder."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ApdError(f"{option} must end in {' or '.join(suffixes)} (got {p.name!r})")
    writable_path(p, option)
    if not p.parent.is_dir():
        raise ApdError(f"directory {str(p.parent)!r} does not exist")
    return p


def default_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a file or folder made by `tempfile` (mode 0600 / 0700, private on purpose for
    temp files) the mode a plain `open` / `mkdir` gives: 0666 / 0777 less the umask, so an
    atomically written export is as readable as any other tool's output (0644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)
