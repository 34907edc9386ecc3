"""Progress bars and result lines on the console (rank 0 only, on stderr); silent when disabled.

In a terminal: live bars. Elsewhere (a log file, a SLURM job, a pipe) a live bar shows nothing
until it ends, so progress is plain lines instead, at most one per ``PLAIN_EVERY_S`` seconds
plus the last: step, loss, images/s, elapsed and ETA.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from astrobench import distributed

PLAIN_EVERY_S = 30.0
LOG_NAMES = {"images_per_s": "images/s"}  # how a logged scalar is named in a plain line


class Reporter:
    def __init__(self, enabled: bool = True, console: Any = None):
        self.enabled = enabled and distributed.rank() == 0
        self.console = console

    def status(self, text: str):
        if not self.enabled:
            return contextlib.nullcontext()
        return self._console().status(text)

    @contextlib.contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[int, dict[str, float]], None]]:
        """A bar of ``total`` steps; yields ``advance(done, logs)``."""
        if not self.enabled:
            yield lambda done, logs: None
            return
        if not self._console().is_terminal:
            yield plain_progress(self._console(), label, total)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[logs]}"),
            console=self._console(), transient=False,
        ) as progress:
            task_id = progress.add_task(label, total=total, logs="")

            def advance(done: int, logs: dict[str, float]) -> None:
                text = "  ".join(f"{k}={v:.3g}" for k, v in logs.items())
                progress.update(task_id, completed=done, logs=text)

            yield advance

    @contextlib.contextmanager
    def progress_on_first_report(self, label: str) -> Iterator[Callable[[int, int], None]]:
        """Yields ``report(done, total)``; the bar opens at the first report, so work that turns
        out to be cached (a dataset already generated) shows no bar at all."""
        with contextlib.ExitStack() as stack:
            bar: list[Callable[..., None]] = []

            def report(done: int, total: int) -> None:
                if not bar:
                    bar.append(stack.enter_context(self.progress(label, total)))
                bar[0](done, {})

            yield report

    def result(self, record: dict[str, Any], path: Path | None = None) -> None:
        """One line per result written, with the full path of its file."""
        if not self.enabled:
            return
        from rich.markup import escape

        main = record["main_score"]
        score = record["scores"].get(main)
        budget = "all" if record["label_budget"] is None else record["label_budget"]
        where = f" -> {escape(str(Path(path).resolve()))}" if path is not None else ""
        self._console().print(
            f"[green]✓[/] {escape(record['method'])} seed {record['seed']} · {record['task']} / {record['protocol']} "
            f"(labels {budget}): {main} = {score:.4g}{where}", soft_wrap=True,
        )

    def _console(self):
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True)
        return self.console


def plain_progress(console: Any, label: str, total: int, every: float = PLAIN_EVERY_S,
                   clock: Callable[[], float] = time.monotonic) -> Callable[[int, dict[str, float]], None]:
    """``advance(done, logs)`` printing ``label: done/total  loss=..  images/s=..  elapsed ..  ETA ..``
    lines: the first report, then at most one per ``every`` seconds, and the last step."""
    start = clock()
    last = [-math.inf]

    def advance(done: int, logs: dict[str, float]) -> None:
        now = clock()
        if done < total and now - last[0] < every:
            return
        last[0] = now
        elapsed = now - start
        eta = elapsed / done * (total - done) if done else math.nan
        parts = [f"{label}: {done}/{total}", *(f"{LOG_NAMES.get(k, k)}={v:.3g}" for k, v in logs.items()),
                 f"elapsed {_clock_text(elapsed)}", f"ETA {_clock_text(eta)}"]
        console.print("  ".join(parts), markup=False, highlight=False, soft_wrap=True)

    return advance


def _clock_text(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
