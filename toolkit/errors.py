"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class ApdError(Exception):
    """A mistake in the user's input or environment (not a bug): message is one actionable line."""


def no_such_run(run: str) -> ApdError:
    """The one wording for a run name that is not in the store."""
    return ApdError(f"no run named {run!r} in the store (`apd runs` lists them)")
