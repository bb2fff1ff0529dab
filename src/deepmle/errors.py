"""The one exception type the command line turns into a one-line message and exit code 2."""

from pathlib import Path


class UserError(Exception):
    """Bad input from the user (config, data file, command line): reported in one line."""


def cut(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with "…": what a one-line message echoes of the
    user's input, which a 20 MB value would otherwise fill."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut (``cut``)."""
    return cut(repr(value), limit)


def not_a_file(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be read as a ``what`` file (missing, a directory, a FIFO or
    another special file), or None if it is a regular file."""
    if path.is_file():
        return None
    if not path.exists():
        return f"{what} not found: {path}"
    kind = "a directory" if path.is_dir() else "a named pipe (FIFO)" if path.is_fifo() else (
        "a special file (device or socket)")  # fmt: skip
    return f"{path}: is {kind}, not a {what}"
