"""Errors in what a person asked for or supplied (a period that does not exist, a period outside a pack, a file
that cannot be read, an unknown id), as against bugs. They fail the same way every time, so they are not
retried, and the command line shows them as one line and an exit code, not a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A request or an input that cannot be served as it is; the message says what to correct."""
