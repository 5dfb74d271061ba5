"""How `genops run` shows a batch on a terminal: a rich progress bar on stderr and the run table on stdout; on a
pipe, in cron or with --log-format json, the plain lines of `execution.batch.BatchView`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genops_cli.execution.batch import BatchOptions, BatchSummary, BatchView
from genops_cli.logging_setup import EventLog
from genops_cli.models import RunRecord, quantize_money


class ConsoleBatchView(BatchView):
    def __init__(self, total: int, is_batch: bool, options: BatchOptions, events: EventLog,
                 emit: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(total, is_batch, options, events, emit)
        self.bar: Any = None
        self.task: Any = None
        if self.enabled and events.fmt == "text" and not events.quiet:
            from genops_cli.cli.common import stderr_console

            console = stderr_console()
            if console.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

                self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[cost]}"), TextColumn("ETA"), TimeRemainingColumn(),
                                    console=console, transient=False)
                self.task = self.bar.add_task("runs", total=total, cost="$0")
                self.bar.start()

    def line(self, text: str, fields: dict[str, Any], ok: bool) -> None:
        if self.bar is None:
            super().line(text, fields, ok)
        elif not ok and not self.options.quiet:  # ok lines: the bar shows them
            self.bar.console.print(text, markup=False, highlight=False)

    def render_run(self, run: RunRecord) -> None:
        from genops_cli.cli.common import stdout_console
        from genops_cli.views import render_run_table

        render_run_table(run, stdout_console())

    def progress(self, done: int, summary: BatchSummary, force: bool = False) -> None:
        if self.bar is None:
            super().progress(done, summary, force)
            return
        from genops_cli.cli.common import money

        self.bar.update(self.task, completed=done, cost=money(quantize_money(summary.total_cost)))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
