"""Progress for many predictions: rich bars on a terminal, one plain line per item elsewhere."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text

from areplicate._summary import Summary

__all__ = ["ProgressBoard", "Row"]


def _rate(task: Task) -> float | None:
    """Items finished per second since the row started (items done before it are not counted)."""
    elapsed = task.elapsed
    done = task.completed - float(task.fields.get("base", 0))
    if not elapsed or elapsed < 0.2 or done <= 0:
        return None
    return done / elapsed


class _RateColumn(ProgressColumn):
    """Items finished per second, averaged since the start (steadier than rich's own estimate
    when items finish in bursts)."""

    def render(self, task: Task) -> Text:
        """The rate as ``12.3/s``, or a dash until a fifth of a second has passed and one item finished."""
        rate = _rate(task)
        return Text("   - /s" if rate is None else f"{rate:5.1f}/s", style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    """Time left at the average rate.

    Computed from items finished by this run only: a resumed batch's earlier items would make the
    first seconds look impossibly fast.
    """

    def render(self, task: Task) -> Text:
        """``ETA m:ss`` at the average rate, ``done`` when finished, a dash while the rate is unknown."""
        rate = _rate(task)
        if task.finished:
            return Text("done", style="progress.elapsed")
        if rate is None or task.total is None:
            return Text("ETA -:--", style="progress.remaining")
        left = int((task.total - task.completed) / rate + 0.5)
        return Text(f"ETA {left // 60}:{left % 60:02d}", style="progress.remaining")


class Row:
    """One progress bar: counts of done, failed and in-flight items.

    The counts are kept here, not only in rich's task, so they stay right off a terminal (where
    there is no task) and the batch can read them for its closing line.
    """

    def __init__(
        self,
        board: ProgressBoard,
        label: str,
        total: int | None,
        done: int,
        failed: int,
        plain_every: int,
    ) -> None:
        """Made by :meth:`ProgressBoard.add`; ``done`` and ``failed`` count items finished before.

        ``base`` (the items done before) is kept on the rich task, so the rate counts only new ones.
        """
        self._board = board
        self._plain_every = plain_every
        self.label = label
        self.total = total
        self.done = done
        self.failed = failed
        self.in_flight = 0
        self._task: TaskID | None = None
        if board._progress is not None:
            self._task = board._progress.add_task(
                label, total=total, completed=done, failed=failed, in_flight=0, base=done
            )

    def started(self) -> None:
        """An item went in flight.

        Shown on a live bar only: off a terminal an item prints nothing until it finishes.
        """
        self.in_flight += 1
        self._refresh()

    def stopped(self) -> None:
        """An item left flight without finishing (interrupted).

        It is not counted as done or failed: a re-run will finish it.
        """
        self.in_flight = max(0, self.in_flight - 1)
        self._refresh()

    def finished(self, ok: bool, text: str, *, was_in_flight: bool = True) -> None:
        """An item finished; ``text`` is its plain line (printed when not on a terminal).

        ``was_in_flight=False`` for an item that never started (an invalid line), so the in-flight
        count is not decremented for it.
        """
        self.done += 1
        if not ok:
            self.failed += 1
        if was_in_flight:
            self.in_flight = max(0, self.in_flight - 1)
        if self.done == self.total:
            self.in_flight = 0
        if self._task is not None and self._board._progress is not None:
            self._board._progress.update(
                self._task, advance=1, failed=self.failed, in_flight=self.in_flight
            )
        elif self._plain_every == 1:
            total = "?" if self.total is None else str(self.total)
            self._board.console.print(f"[{self.done}/{total}] {text}", markup=False)
        elif self.done % self._plain_every == 0 or self.done == self.total:
            total = "?" if self.total is None else str(self.total)
            self._board.console.print(
                f"{self.label}: {self.done}/{total} done, {self.failed} failed", markup=False
            )

    def set_in_flight(self, count: int) -> None:
        """Set the in-flight count (when the work counts it itself).

        Forced to 0 once every item is done, whatever ``count`` says.
        """
        self.in_flight = 0 if self.done == self.total else max(0, count)
        self._refresh()

    def _refresh(self) -> None:
        """Push the in-flight count to the live bar (nothing to do off a terminal)."""
        if self._task is not None and self._board._progress is not None:
            self._board._progress.update(self._task, in_flight=self.in_flight)


class ProgressBoard:
    """A set of progress rows. Use as a context manager around the work.

    On a terminal (``console.is_terminal``) it draws live bars with done/total, failed, in flight,
    rate and ETA; otherwise each finished item prints one line, which suits logs and pipes.
    """

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        """``live`` forces bars on or off; by default they are drawn only when ``console`` is a terminal."""
        self.console = console
        self.live = console.is_terminal if live is None else live
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed[/]"),
                TextColumn("{task.fields[in_flight]} in flight"),
                _RateColumn(),
                _EtaColumn(),
                console=console,
            )

    def add(
        self,
        label: str,
        total: int | None,
        *,
        done: int = 0,
        failed: int = 0,
        plain_every: int = 1,
    ) -> Row:
        """A new row; ``done``/``failed`` count items finished before (a resumed batch).

        Off a terminal, each finished item prints its own line, or with ``plain_every=N`` only
        every N-th (a count, not the item).
        """
        return Row(self, label, total, done, failed, max(1, plain_every))

    def note(self, text: str) -> None:
        """Print a line (above the bars when they are live).

        Never parsed as rich markup: notes carry model errors and file names, which may hold brackets.
        """
        self.console.print(text, markup=False, highlight=False)

    def summary(self, summary: Summary) -> None:
        """Print what the run cost: a line per model, then wall time, requests, retries, 429s.

        Nothing is printed when this run counted no item (an empty or fully resumed batch).
        """
        if summary.models:
            self.note(f"Cost: {summary.describe()}")

    def __enter__(self) -> ProgressBoard:
        """Start drawing the live bars (nothing off a terminal)."""
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the live bars, leaving their last state on screen; an exception is not swallowed."""
        if self._progress is not None:
            self._progress.stop()
