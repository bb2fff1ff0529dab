"""The one exception type the command line turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (config, data file, command line): reported in one line."""


def short(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters with "…": a value echoed in a one-line
    message, which a 20 MB value would otherwise fill."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
