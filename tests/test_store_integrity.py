"""Damaged LadybugDB files are found, and compact deletes only what it created.

Bit rot: bytes flipped in a copy of a real store, at every place the file holds a given
pattern's uid, key and bits and an instance's uid (its columns and its uid index, wherever
the layout puts them), each once to another hex digit and once to a byte that is not UTF-8.
Each time `apd store check` exits 1 naming the damage and `apd store compact` refuses in one
line, leaving the file byte for byte as it was (it checks before any writable open).

Compact: whatever happens to it (refused, failed, interrupted, killed, or done), every file
of the user's beside the store keeps its bytes and mtime, and nothing of the toolkit's stays.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from toolkit.store import open_store
from toolkit.store import maintenance
from tests.cli import invoke, one_line_error
from tests.named_queries import PARAMS, canonical, params

ROOT = Path(__file__).resolve().parent.parent
USER_FILES = ("s.lbug.notes", "s.lbug.csv", "s.lbug.bak", "s.lbug.txt", "copy.lbug.notes", "copy.lbug.csv",
              ".s.lbug.compact-mine/keep.txt")  # the last: a look-alike folder without our owner file


def _listing(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def folder(demo_master, tmp_path):
    """The demo store as `s.lbug` in a folder with the user's own files named like it."""
    where = tmp_path / "user"
    where.mkdir()
    demo = Path(demo_master.store)
    for f in demo.parent.glob(demo.name + "*"):
        shutil.copy2(f, where / f.name.replace(demo.name, "s.lbug"))
    for name in USER_FILES:
        (where / name).parent.mkdir(exist_ok=True)
        (where / name).write_text(f"the user's {name}\n")
    return where


# --- bit rot ------------------------------------------------------------------------------------

def _targets(data: bytes) -> list[tuple[str, int]]:
    """Every offset of a few stored strings (a pattern's uid, key and bits, an instance's uid)."""
    with_key = re.search(rb"digits-train:p:1:([0-9a-f]{16})", data)
    key = with_key.group(1)
    out = []
    for label, text in (("pattern uid", with_key.group(0)), ("pattern key", key),
                        ("instance uid", b"digits-test:i:449")):
        out += [(label, m.start() + len(text) - 3) for m in re.finditer(re.escape(text), data)]
    return out


def test_flipped_bytes_are_found_and_compact_refuses(folder):
    store = folder / "s.lbug"
    clean = store.read_bytes()
    assert invoke("store", "check", "--store", str(store)).exit_code == 0
    with open_store(str(store), read_only=True) as s:
        bits = s.read("MATCH (p:Pattern) WHERE p.run = 'digits-train' AND p.layer = 2 RETURN p.bits AS b LIMIT 1")["b"][0]
    targets = _targets(clean) + [("pattern bits", m.start() + 2) for m in re.finditer(bits.encode(), clean)]
    assert {t for t, _ in targets} == {"pattern uid", "pattern key", "instance uid", "pattern bits"}
    assert len(targets) >= 6
    damaged = folder / "damaged.lbug"
    for label, offset in targets:
        for byte in (ord("a") if clean[offset] != ord("a") else ord("b"), 0xFF):
            data = bytearray(clean)
            data[offset] = byte
            damaged.write_bytes(bytes(data))
            check = invoke("store", "check", "--store", str(damaged))  # a writable open: LadybugDB may
            assert check.exit_code == 1, (label, offset, check.output)  # rewrite its header
            data, before = damaged.read_bytes(), _listing(folder)
            lines = check.stderr.splitlines()
            assert lines and all(ln.startswith("problem: run digits-") for ln in lines), (label, offset, check.stderr)
            assert "problem" in check.stdout  # "1 problem", "3 problems"
            compact = invoke("store", "compact", "--store", str(damaged))
            one_line_error(compact, "is damaged, compact leaves it as it is")
            out = invoke("store", "compact", "--store", str(damaged), "--out", str(folder / "copy.lbug"))
            one_line_error(out, "is damaged, compact leaves it as it is")
            assert damaged.read_bytes() == data
            assert _listing(folder) == before
    damaged.unlink()


def test_a_rotten_pattern_key_names_the_layer(folder):
    """A hand-checked case: one digit of a key's column copy changed (the file holds the key
    in several places: uids, their index, the key column), so that key and its bits disagree."""
    store = folder / "s.lbug"
    with open_store(str(store), read_only=True) as s:
        row = s.read("MATCH (p:Pattern) WHERE p.run = 'digits-test' AND p.layer = 3 "
                     "RETURN p.key AS key, p.bits AS bits ORDER BY key LIMIT 1").iloc[0]
    data = store.read_bytes()
    spots = [m.start() for m in re.finditer(row["key"].encode(), data)]
    result = None
    for spot in spots:
        rotten = bytearray(data)
        rotten[spot] = ord("0") if data[spot] != ord("0") else ord("1")
        store.write_bytes(bytes(rotten))
        result = invoke("store", "check", "--store", str(store))
        if "Pattern keys do not match their bits" in result.stderr:
            break
    assert "problem: run digits-test: layer 3: 1 of" in result.stderr
    assert "Pattern keys do not match their bits" in result.stderr


# --- compact deletes only what it created -----------------------------------------------------

def _content(store: Path) -> tuple:
    with open_store(str(store), read_only=True) as s:
        return maintenance._snapshot(s)


def _users(listing: dict) -> dict:
    """Everything but the store file, whose header LadybugDB rewrites on any writable open."""
    return {k: v for k, v in listing.items() if k != "s.lbug"}


def test_compact_keeps_the_users_files(folder):
    store = folder / "s.lbug"
    mine, content = _users(_listing(folder)), _content(store)
    out = invoke("store", "compact", "--store", str(store), "--out", str(folder / "copy.lbug"), "--json")
    assert out.exit_code == 0, out.output
    after = _users(_listing(folder))
    assert set(after) == set(mine) | {"copy.lbug"} and all(after[k] == v for k, v in mine.items())
    assert _content(folder / "copy.lbug") == content
    assert invoke("store", "compact", "--store", str(store)).exit_code == 0
    after = _users(_listing(folder))
    assert set(after) == set(mine) | {"copy.lbug"} and all(after[k] == v for k, v in mine.items())
    assert _content(store) == content
    assert invoke("store", "check", "--store", str(store)).exit_code == 0


def test_compact_out_writes_a_smaller_copy_with_the_same_answers(folder):
    """After a run is dropped its pages stay allocated; `--out` writes a copy without them,
    that every named query answers as the store does, and leaves the store as it was."""
    store, copy = folder / "s.lbug", folder / "copy.lbug"
    assert invoke("drop", "--run", "digits-train", "--store", str(store)).exit_code == 0
    before, content = _users(_listing(folder)), _content(store)
    result = invoke("store", "compact", "--store", str(store), "--out", str(copy), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    files = [p for p in folder.iterdir() if p.name.startswith("s.lbug") and p.suffix in (".lbug", ".wal")]
    assert info["bytes_before"] == sum(p.stat().st_size for p in files)
    # the dropped run held 1,347 of the 1,797 instances: the copy sheds a good part of the file
    assert info["bytes_after"] == copy.stat().st_size < 0.75 * info["bytes_before"], info
    assert info["path"] == str(copy.resolve()) and info["runs"] == 1
    after = _users(_listing(folder))
    assert {k: v for k, v in after.items() if k != "copy.lbug"} == before  # no file of the user's touched
    assert _content(store) == _content(copy) == content  # the store keeps its graph; the copy holds the same
    assert invoke("store", "check", "--store", str(copy)).exit_code == 0
    with open_store(str(store), read_only=True) as old, open_store(str(copy), read_only=True) as new:
        assert list(new.runs()["run"]) == ["digits-test"]
        for name in PARAMS:
            want = canonical(old.query(name, **params(name, runs=["digits-test"])))
            pd.testing.assert_frame_equal(canonical(new.query(name, **params(name, runs=["digits-test"]))), want,
                                          obj=name)


@pytest.mark.parametrize("how", ["fails", "interrupted", "terminated"])
def test_a_failed_compact_leaves_everything_as_it_was(folder, monkeypatch, how):
    from toolkit.store import outcome
    from toolkit.store.base import StoreError

    def broken(work):
        raise {"fails": StoreError("compact failed, the store is unchanged: disk on fire"),
               "interrupted": KeyboardInterrupt(), "terminated": outcome.Terminated()}[how]

    monkeypatch.setattr(maintenance, "_imported", broken)
    before, content = _listing(folder), _content(folder / "s.lbug")
    for extra in ([], ["--out", str(folder / "copy.lbug")]):
        result = invoke("store", "compact", "--store", str(folder / "s.lbug"), *extra)
        assert result.exit_code == {"fails": 1, "interrupted": 130, "terminated": 143}[how], result.output
        assert "Traceback" not in result.output and result.stderr.count("\n") == 1
        assert _users(_listing(folder)) == _users(before) and set(_listing(folder)) == set(before)
        assert _content(folder / "s.lbug") == content


def test_a_killed_compacts_work_is_removed_by_the_next(folder):
    """SIGKILL leaves the work folder; the next compact of the same store removes it (ours by
    its owner file) and leaves the look-alike folder without one."""
    kill = ("import os, signal, sys; from toolkit.store import maintenance; "
            "maintenance._imported = lambda work: os.kill(os.getpid(), signal.SIGKILL); "
            "maintenance.compact(sys.argv[1])")
    before = _listing(folder)
    assert subprocess.run([sys.executable, "-c", kill, str(folder / "s.lbug")], cwd=ROOT).returncode == -signal.SIGKILL
    left = [p for p in folder.iterdir() if p.name.startswith(".s.lbug.compact-") and p.name != ".s.lbug.compact-mine"]
    assert len(left) == 1 and (left[0] / maintenance.OWNER).is_file()
    assert invoke("store", "compact", "--store", str(folder / "s.lbug")).exit_code == 0
    after = _listing(folder)
    assert set(after) == set(before) and _users(after) == _users(before)
    assert invoke("store", "check", "--store", str(folder / "s.lbug")).exit_code == 0
