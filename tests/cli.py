"""The `apd` CLI as the tests drive it: in-process (`invoke`, `Apd`), as the installed entry
point in a child process (`run_apd`), and the one check every refusal must pass
(`one_line_error`), so that each test file states what a user sees the same way."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from toolkit.cli import main

APD = str(Path(sys.executable).with_name("apd"))  # the installed entry point, as users run it


def invoke(*args: str) -> Result:
    """`apd ARGS` in-process, exactly as given (no --store added); an exception ends up in
    the result, as a crash would reach the user."""
    return CliRunner().invoke(main, list(args))


class Apd:
    """Invoke `apd ... --store STORE` in-process; `.json(...)` parses `--json` output."""

    def __init__(self, store_path: str):
        self.store_path = store_path
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = self.runner.invoke(main, [*args, "--store", self.store_path], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


def run_apd(*args: str, **kw) -> subprocess.CompletedProcess:
    """The installed `apd ARGS` in a child process (text output; 300 s at most): what a
    signal, a file-size limit or a full disk does to a real process."""
    return subprocess.run([APD, *args], capture_output=True, text=True, timeout=300, **kw)


def one_line_error(result: Result | subprocess.CompletedProcess, fragment: str = "", *, usage: bool = False) -> None:
    """A refusal as a user must see it: exit 1 and exactly one line on stderr, `Error: ...`
    holding `fragment`, and no traceback on either stream (nor an exception the CLI let
    through). With `usage`, Click's own usage errors pass too: exit 2, usage lines, then one
    `Error:` line holding `fragment`."""
    if isinstance(result, subprocess.CompletedProcess):
        code, out, err = result.returncode, result.stdout or "", result.stderr
    else:
        code, out, err = result.exit_code, result.stdout, result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    if usage and code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines[-1].startswith("Error: ") and fragment in lines[-1], err
    else:
        assert code == 1, (code, err[-2000:])
        assert err.startswith("Error: ") and err.count("\n") == 1 and fragment in err, err
