"""Progress over a sweep's groups and epochs: a tqdm bar on a terminal or in a Jupyter notebook
(tqdm.auto: a widget there, so no carriage-return garbage), one line per group otherwise."""

import sys
from typing import Any, TextIO


def in_notebook() -> bool:
    """True inside a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return type(ipython).__name__ == "ZMQInteractiveShell"


class Progress:
    """Reports to stderr unless told otherwise. ``quiet`` silences progress (warnings still
    print); ``bar``: a live bar (default: on a terminal or in a notebook), else lines."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, bar: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        if bar is None:
            bar = in_notebook() or bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = bar
        self.group = ""
        self._tqdm: Any = None

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def begin(self, groups: int, epochs_per_group: int) -> None:
        if self.bar and not self.quiet:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=groups * epochs_per_group, file=self.stream, unit="epoch",
                              dynamic_ncols=True, leave=True)  # fmt: skip

    def warn(self, text: str) -> None:
        """What the user must hear (a damaged file set aside): printed even when quiet."""
        line = f"deepmle: warning: {text}"
        if self._tqdm is not None:
            self._tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def skip(self, index: int, groups: int, name: str, epochs: int) -> None:
        if self._tqdm is not None:
            self._tqdm.total -= epochs
            self._tqdm.refresh()
        self._line(f"group {index + 1}/{groups} {name}: already done, skipped")

    def group_start(self, index: int, groups: int, name: str) -> None:
        self.group = f"group {index + 1}/{groups} {name}"
        if self._tqdm is not None:
            self._tqdm.set_description(self.group)

    def epoch(self, epoch: int, mean_ll: float, epochs: int) -> None:
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(
                f"epoch {epoch + 1}/{epochs} LL {mean_ll:.4f}", refresh=False
            )
            self._tqdm.update(1)

    def group_done(self, mean_ll: float, compile_s: float, run_s: float) -> None:
        self._line(
            f"{self.group}: done, final mean train LL {mean_ll:.4f} "
            f"(compile {compile_s:.1f} s, train {run_s:.1f} s)"
        )

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
