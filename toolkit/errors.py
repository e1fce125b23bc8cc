"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class ApdError(Exception):
    """A mistake in the user's input or environment (not a bug): message is one actionable line."""


def no_such_run(run: str) -> ApdError:
    """The one wording for a run name that is not in the store."""
    return ApdError(f"no run named {run!r} in the store (`apd runs` lists them)")


def one_line(exc: BaseException | str, limit: int | None = 200) -> str:
    """An exception's text as one line, whitespace collapsed, cut at `limit` characters.

    Backends and torch put newlines, plans and stack excerpts in their messages; the CLI
    prints exactly one line, so every wrapped failure goes through here.
    """
    text = " ".join(str(exc).split())
    return text if limit is None else text[:limit]
