"""Shared plumbing for the command modules: global options, consoles, one-line errors with exit codes.

Commands stay thin: parse flags, call the library, render. Human text goes to stderr whenever stdout carries
JSON; rich honours NO_COLOR and plain output when not on a TTY (cron).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import typer

from genops_cli.errors import EXIT_USAGE, GenopsError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class GlobalOptions:
    ledger: str | None = None
    config: str | None = None


GLOBAL = GlobalOptions()


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        # Cron and pipes: no colour (rich already drops it) and no truncated columns.
        console = Console(highlight=False, width=160)
    return console


def warn(message: str) -> None:
    """A warning line on stderr (never on stdout, so --json output stays JSON)."""
    stderr_console().print(f"[yellow]warning:[/yellow] {message}", markup=True)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        stderr_console().print(message, markup=False)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_json_default, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def handle_errors(func: F) -> F:
    """Turn GenopsError into `error: <one line>` + its exit code; never a traceback (GENOPS_DEBUG=1 shows it)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GenopsError as exc:
            if os.environ.get("GENOPS_DEBUG"):
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]


def load_cli_settings(**attribution: Any) -> Any:
    """Settings for this invocation from the global --config/--ledger and attribution flags."""
    from genops_cli.config import load_settings
    from genops_cli.models import Attribution

    attr = Attribution(**{k: v for k, v in attribution.items() if k != "tags" and v is not None})
    if attribution.get("tags"):
        attr.tags = dict(attribution["tags"])
    return load_settings(GLOBAL.config, GLOBAL.ledger, attr)


def open_cli_ledger(settings: Any) -> Any:
    from genops_cli.ledger.store import open_ledger, resolve_ledger_location

    return open_ledger(resolve_ledger_location(GLOBAL.ledger, settings.ledger))


def open_cli_writer_ledger(settings: Any) -> Any:
    """The ledger for a command that writes: runs left in the spool by a crashed or ledger-less invocation are
    ingested first, exactly once (a ledger that still cannot be written is reported by the write itself)."""
    from genops_cli.ledger.records import drain

    ledger = open_cli_ledger(settings)
    result = drain(ledger)
    if result.inserted:
        info(f"ingested {len(result.inserted)} spooled run(s) left by an earlier invocation")
    return ledger


def money(value: Decimal | None, places: int = 6) -> str:
    """Human rendering of a cost: at least `places` decimals, more when a small cost needs them
    ($0.000450, $0.00000026); full precision always lives in JSON and the ledger."""
    if value is None:
        return "-"
    exact = value.quantize(Decimal("0.0000000001")).normalize()
    shown = exact if -exact.as_tuple().exponent > places else exact.quantize(Decimal(1).scaleb(-places))
    return f"${shown:f}"
