"""User-facing errors: the CLI prints their message as one line and exits non-zero."""


class ApdError(Exception):
    """A mistake in the user's input or environment (not a bug): message is one actionable line."""
