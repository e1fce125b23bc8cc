"""The `apd` executable. Importing the CLI (pandas, the stores) takes about half a second, and
Ctrl-C during it used to print a raw KeyboardInterrupt traceback: here the import runs inside
the handler, so an interrupt at any moment is one line and exit code 130.

Once the CLI runs, its own handler says what an interrupt left in the store
(toolkit/store/outcome.py); this one only covers the start-up before it.
"""
from __future__ import annotations

import sys


def main() -> None:
    try:
        from toolkit.cli import main as cli

        cli()
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        sys.exit(130)
