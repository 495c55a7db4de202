"""Progress of long work (checking a folder of files, decoding a cache, writing an export), on a terminal only.

A bar is drawn on stderr with ``rich`` when stderr is a terminal, and goes away when the work is done
(the log lines stay); anywhere else (a pipe, a file, a test runner, a CI log) nothing extra is written.
``model.evaluate`` draws Keras's own bar on stdout: :func:`keras_verbosity` says when.

    with progress("checking 5000 images in flowers/", total=5000) as bar:
        for path in paths:
            ...
            bar.advance()
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def on_terminal(stream=None) -> bool:
    """Whether ``stream`` (default: stderr, where the bars go) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a stand-in without isatty, or a closed stream
        return False


def keras_verbosity(verbose="auto") -> int:
    """``verbose`` for ``model.evaluate``/``predict``: "auto" is 1 (Keras's progress bar, on stdout) when
    stdout is a terminal, else 0; a number is kept."""
    if verbose == "auto":
        return 1 if on_terminal(sys.stdout) else 0
    return int(verbose)


class Progress:
    """What :func:`progress` yields: ``advance(steps, description=...)``; does nothing off a terminal."""

    def __init__(self, bar=None, task=None):
        self._bar, self._task = bar, task

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=steps, **({"description": description} if description else {}))


NO_PROGRESS = Progress()  # a default for functions that advance a bar they are given


@contextlib.contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Progress]:
    """A progress bar for ``total`` steps (``None``: a count without an end) while the block runs."""
    if not on_terminal():
        yield Progress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              console=Console(file=sys.stderr), transient=True)
    with bar:
        yield Progress(bar, bar.add_task(description, total=total))
