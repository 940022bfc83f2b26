"""Shared terminal output: tables and progress bars on stderr, data on stdout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)


@contextmanager
def progress_bar(label: str, *, unit: str = "rows") -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)``; the bar shows only on a terminal."""
    amount = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        amount,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


class PhasedBar:
    """A bar that follows the input while it is read, then says which phase runs.

    A reader that runs ahead reaches 100% long before the work is done; from
    there the bar pulses and its label names the phase, instead of standing
    still at 100%.
    """

    def __init__(self, bar: Progress, task: TaskID, label: str) -> None:
        self._bar, self._task, self._label = bar, task, label

    def update(self, done: int, total: int) -> None:
        """The input read so far."""
        ahead = total > 0 and done >= total
        self._bar.update(self._task, completed=done, total=None if ahead else (total or None))

    def phase(self, text: str) -> None:
        """What the run is doing now."""
        self._bar.update(self._task, description=f"{self._label}: {text}")


@contextmanager
def phased_bar(label: str) -> Iterator[PhasedBar]:
    """A :class:`PhasedBar` on stderr, shown only on a terminal."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        yield PhasedBar(bar, bar.add_task(label, total=None), label)
