"""What an interrupted command leaves behind, said in one line (instead of Click's `Aborted!`).

Store batches report here when a run's write starts, commits or rolls back; on Ctrl-C
(exit 130) or SIGTERM (exit 143) the CLI prints `line()` so the user knows whether the
run they were writing is in the store or not.
"""
from __future__ import annotations

import signal
from typing import Any


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt so cleanups run."""


EXIT_CODES = {KeyboardInterrupt: 130, Terminated: 143}

_last: dict[str, Any] = {}


def begin(run: str) -> None:
    _last.clear()
    _last.update(run=run, state="writing")


def committed(run: str) -> None:
    _last.update(run=run, state="committed")


def rolled_back(run: str, previous_kept: bool) -> None:
    _last.update(run=run, state="rolled back", previous_kept=previous_kept)


def reset() -> None:
    _last.clear()


def line() -> str:
    """One line: which run's write was committed or rolled back, or that nothing was written."""
    run, state = _last.get("run"), _last.get("state")
    if state == "committed":
        return f"interrupted: run {run} was committed"
    if state == "rolled back" and _last.get("previous_kept"):
        return f"interrupted: run {run} rolled back, the store holds its previous state"
    if state == "rolled back":
        return (f"interrupted: run {run} rolled back; its previous results had already been replaced, "
                f"so the run is absent: re-run the command")
    if state == "writing":
        return f"interrupted: run {run} was cut off; the next open of the store rolls it back"
    return "interrupted: nothing was written to the store"


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def install_sigterm() -> None:
    """Turn SIGTERM into `Terminated` so that `finally` blocks and rollbacks run."""
    signal.signal(signal.SIGTERM, _raise_terminated)
