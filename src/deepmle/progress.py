"""Progress over a sweep's groups and epochs: a bar on a terminal, one line per group otherwise."""

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Reports to stderr unless told otherwise; ``quiet`` silences it; ``bar``: isatty."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, bar: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar = self.stream.isatty() if bar is None else bar
        self.total_epochs = 0
        self.done_epochs = 0
        self.start = time.perf_counter()
        self.group = ""

    def _print(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            print(text, end=end, file=self.stream, flush=True)

    def begin(self, groups: int, epochs_per_group: int) -> None:
        self.total_epochs = groups * epochs_per_group
        self.start = time.perf_counter()

    def note(self, text: str) -> None:
        self._print(text)

    def warn(self, text: str) -> None:
        """What the user must hear (a damaged file set aside): printed even when quiet."""
        print(f"deepmle: warning: {text}", file=self.stream, flush=True)

    def skip(self, index: int, groups: int, name: str, epochs: int) -> None:
        self.total_epochs -= epochs
        self._print(f"group {index + 1}/{groups} {name}: already done, skipped")

    def group_start(self, index: int, groups: int, name: str) -> None:
        self.group = f"group {index + 1}/{groups} {name}"

    def epoch(self, epoch: int, epochs: int, mean_ll: float) -> None:
        self.done_epochs += 1
        if self.bar:
            elapsed = time.perf_counter() - self.start
            left = self.total_epochs - self.done_epochs
            eta = elapsed / self.done_epochs * left
            frac = self.done_epochs / max(self.total_epochs, 1)
            filled = int(20 * frac)
            self._print(
                f"\r[{'#' * filled}{'.' * (20 - filled)}] {self.group} epoch {epoch + 1}/{epochs} "
                f"LL {mean_ll:.4f} ETA {_clock(eta)}  ",
                end="",
            )

    def group_done(self, mean_ll: float, compile_s: float, run_s: float) -> None:
        if self.bar:
            self._print("")
        self._print(
            f"{self.group}: done, final mean train LL {mean_ll:.4f} "
            f"(compile {compile_s:.1f} s, train {run_s:.1f} s)"
        )
