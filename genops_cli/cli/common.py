"""Shared plumbing for the command modules: global options, consoles, one-line errors with exit codes.

Commands stay thin: parse flags, call the library, render. Human text goes to stderr whenever stdout carries
JSON; rich honours NO_COLOR and plain output when not on a TTY (cron).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import typer

from genops_cli.cli.root import GenopsGroup  # noqa: F401 - the root group, which applies the conventions below
from genops_cli.errors import EXIT_USAGE, GenopsError
from genops_cli.money import DISPLAY_PLACES, money_text

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class GlobalOptions:
    ledger: str | None = None
    config: str | None = None


GLOBAL = GlobalOptions()


# Consoles print text literally by default (markup=False, emoji=False): tenant, team, scope, pipeline and component
# names are user data, and "[bold]" or "team:a:" in one must print as typed, in tables too. Output that wants
# styling opts in: `console.print(..., markup=True)` or `styled("[red]...[/red]")`, with user strings escaped.


@functools.cache
def console_class() -> Any:
    """rich's Console with control characters in the printed text shown as escapes (safe_output.terminal_text):
    user strings (a tenant named `\\x1b]0;...`, a team with a carriage return) cannot drive the terminal. Only
    text segments are rewritten; the control segments and styles rich adds itself are kept."""
    from rich.console import Console
    from rich.segment import Segment

    from genops_cli.safe_output import terminal_text

    class SafeConsole(Console):
        def _render_buffer(self, buffer: Any) -> str:
            return super()._render_buffer(
                Segment(terminal_text(text), style, control) if not control else Segment(text, style, control)
                for text, style, control in buffer)

    return SafeConsole


def stderr_console() -> Any:
    Console = console_class()  # noqa: N806 - a class

    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def stdout_console() -> Any:
    Console = console_class()  # noqa: N806 - a class

    console = Console(highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        # Cron and pipes: no colour (rich already drops it) and no truncated columns.
        console = Console(highlight=False, width=160, markup=False, emoji=False)
    return console


def styled(markup: str) -> Any:
    """A rich Text from markup that genops wrote (user strings inside it must be `rich.markup.escape`d)."""
    from rich.text import Text

    return Text.from_markup(markup, emoji=False)


def warn(message: str) -> None:
    """A warning line on stderr (never on stdout, so --json output stays JSON)."""
    from rich.markup import escape

    # The message carries user strings (tenant ids, file names): escaped, so "[/]" is text, not rich markup.
    from genops_cli.redact import redact

    stderr_console().print(f"[yellow]warning:[/yellow] {escape(redact(message) or '')}", markup=True)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        from genops_cli.redact import redact

        stderr_console().print(redact(message), markup=False)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise. Control characters and newlines a message
    carries from user input are shown as escapes: the error stays one line and cannot drive the terminal; a value
    of thousands of characters is shortened in the middle, so the fix at the end of the line stays readable."""
    from genops_cli.redact import redact
    from genops_cli.safe_output import terminal_text

    text = _LONG_TOKEN.sub(lambda m: _shortened(m.group()), terminal_text(redact(message) or "", one_line=True))
    print(f"error: {text}", file=sys.stderr)
    return typer.Exit(code)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def print_json(obj: Any, stream: Any = None) -> None:
    """One JSON document on stdout (or `stream`), every string in it with secrets masked (a provider error echoing
    a key)."""
    from genops_cli.redact import redact_obj, redactor

    scrub = redactor()
    text = json.dumps(redact_obj(obj, scrub), default=lambda v: redact_obj(_json_default(v), scrub),
                      ensure_ascii=False)
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()


def handle_errors(func: F) -> F:
    """Turn GenopsError into `error: <one line>` + its exit code; never a traceback (GENOPS_DEBUG=1 shows it)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        usage_error = False
        try:
            return func(*args, **kwargs)
        except GenopsError as exc:
            usage_error = exc.exit_code == EXIT_USAGE
            if os.environ.get("GENOPS_DEBUG"):
                raise
            raise fail(str(exc), exc.exit_code) from None
        except typer.Exit as exc:
            usage_error = exc.exit_code == EXIT_USAGE
            raise
        except OSError as exc:  # a path genops was given that the system refuses (too long, a folder, no access)
            usage_error = True
            if os.environ.get("GENOPS_DEBUG"):
                raise
            raise fail(os_error_message(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        finally:
            _announce_new_ledgers(usage_error)

    return wrapper  # type: ignore[return-value]


_OS_ERROR_HINTS = {
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "give a file, not a folder",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
    errno.EROFS: "the file system is read-only; choose another place",
    errno.ENOSPC: "the disk is full; free space or choose another place",
}


#: A run of this many characters without a space in an error line is a hostile or mistaken value, not a message.
_LONG_TOKEN = re.compile(r"\S{300,}")


def _shortened(text: str, limit: int = 120) -> str:
    return f"{text[:limit // 2]}...{text[-(limit // 4):]} ({len(text)} characters)" if len(text) > limit else text


def shown_path(value: Any) -> str:
    """A path or value for an error line: quoted, and shortened in the middle when it is very long."""
    return repr(_shortened(str(value)))


def os_error_message(exc: OSError) -> str:
    """One line for an OSError that reached a command: the path it names, what the system said, what to do."""
    what = exc.strerror or type(exc).__name__
    hint = _OS_ERROR_HINTS.get(exc.errno or 0, "check the path")
    if exc.filename is None:
        return f"{what}; {hint}"
    return f"{shown_path(exc.filename)}: {what}; {hint}"


# DuckDB ledgers this invocation opened before their file existed: announced once the command ends, if it created
# them (after a usage error the one-line error stays the only line).
_NEW_LEDGERS: list[Any] = []
#: The command's own stderr event log when it has one (`genops run`: --quiet, --log-format json), so the notice
#: follows the same rules as the command's other lines.
EVENTS: Any = None


def _announce_new_ledgers(usage_error: bool) -> None:
    global EVENTS
    from genops_cli.logging_setup import EventLog

    events, EVENTS = EVENTS or EventLog(), None
    while _NEW_LEDGERS:
        ledger = _NEW_LEDGERS.pop()
        if not usage_error and ledger.exists():
            events.info("ledger.created", f"genops: created a new ledger at {ledger.location} (none existed "
                        "there; another ledger: --ledger PATH or GENOPS_LEDGER)", ledger=str(ledger.location))


def load_cli_settings(**attribution: Any) -> Any:
    """Settings for this invocation from the global --config/--ledger and attribution flags."""
    from genops_cli.config import load_settings
    from genops_cli.models import Attribution

    attr = Attribution(**{k: v for k, v in attribution.items() if k != "tags" and v is not None})
    if attribution.get("tags"):
        attr.tags = dict(attribution["tags"])
    settings = load_settings(GLOBAL.config, GLOBAL.ledger, attr)
    from genops_cli.startup import install_hooks

    install_hooks(settings)  # every run this command ingests (its own, spool leftovers) goes through them
    return settings


def open_cli_ledger(settings: Any, notice: bool = True) -> Any:
    """The ledger of this invocation. A DuckDB file that does not exist yet is created by the first write: with
    `notice`, the command says so on stderr when it ends (a mistyped --ledger must not silently start an empty
    ledger)."""
    from genops_cli.ledger.store import open_ledger, resolve_ledger_location

    ledger = open_ledger(resolve_ledger_location(GLOBAL.ledger, settings.ledger))
    if notice and ledger.backend == "duckdb" and not ledger.exists():
        _NEW_LEDGERS.append(ledger)
    return ledger


def open_cli_reader_ledger(settings: Any, complete: bool = False) -> Any:
    """The ledger for a command that only reads: a DuckDB path that does not exist is an error (exit 2), not an
    empty report, since it is most often a mistyped --ledger or a missing GENOPS_LEDGER.

    Runs waiting in the spool are ingested first, so the answer sees every record. When they cannot be (another
    process holds the ledger, a read-only ledger) the command says how many runs its answer misses, on stderr;
    with `complete` (a bill, a FOCUS export) it refuses instead: LedgerError, exit 4."""
    from genops_cli.errors import LedgerError, UsageError
    from genops_cli.ledger.recorder import catch_up

    ledger = open_cli_ledger(settings, notice=False)
    if ledger.backend == "duckdb" and not ledger.exists():
        raise UsageError(f"no ledger at {ledger.location}; check --ledger / GENOPS_LEDGER (a ledger is created by "
                         "the first genops run)")
    if ledger.backend == "duckdb" and ledger.foreign_file():  # a mistyped path: nothing to read, nothing at stake
        raise UsageError(ledger.foreign_file_message())
    caught = catch_up(ledger)
    report_stale_spool(ledger, settings)  # what still waits after the catch-up
    if caught.ingested:
        info(f"ingested {caught.ingested} spooled run(s) first")
    if caught.pending:
        message = caught.message(ledger.spool_dir())
        if complete:
            raise LedgerError(f"{message}: refusing to bill without them; retry once the ledger can be written, "
                              "or run `genops ledger drain` first")
        warn(f"{message}; this answer does not include them")
    return ledger


def open_cli_writer_ledger(settings: Any) -> Any:
    """The ledger for a command that writes: runs left in the spool by a crashed or ledger-less invocation are
    ingested first, exactly once (a ledger that still cannot be written is reported by the write itself)."""
    from genops_cli.ledger.records import drain

    ledger = open_cli_ledger(settings)
    result = drain(ledger)
    if result.inserted:
        info(f"ingested {len(result.inserted)} spooled run(s) left by an earlier invocation")
    report_stale_spool(ledger, settings)  # what still waits after the drain
    return ledger


def report_stale_spool(ledger: Any, settings: Any) -> None:
    """Alert (stderr line, and the configured webhook) when runs wait in the spool longer than the configured
    minutes: a ledger that cannot be written loses nothing, but nobody is billed for those runs until it is fixed."""
    from genops_cli.policy.alerts import check_stale_spool

    check_stale_spool(ledger, settings)


def finite(ctx: Any, param: Any, value: float | None) -> float | None:
    """Click callback for a float option: NaN and infinity are refused (click's range check lets NaN through)."""
    import math

    if value is not None and not math.isfinite(value):
        flag = param.opts[0] if getattr(param, "opts", None) else param.name
        raise typer.BadParameter(f"{value} is not a number of seconds; give a finite value", param_hint=flag)
    return value


def check_output_format(value: str | None, json_flag: bool, allowed: tuple[str, ...]) -> str:
    """The one output format of a command from `--format` and its alias `--json`; bad values exit 2."""
    from genops_cli.errors import UsageError

    fmt = (value or allowed[0]).lower()
    if json_flag:
        if value is not None and fmt not in ("json", allowed[0]):
            raise UsageError(f"--json conflicts with --format {value}; give one of them")
        fmt = "json"
    if fmt not in allowed:
        raise UsageError(f"--format {value!r}: use one of {', '.join(allowed)}")
    return fmt


def money(value: Decimal | None, places: int = DISPLAY_PLACES) -> str:
    """Human rendering of a cost at the one display precision (genops_cli/money.py): $0.000450, $1,234.500000,
    <$0.000001; full precision always lives in JSON and the ledger."""
    if value is None:
        return "-"
    return money_text(value, places)


# -- conventions every command follows ---------------------------------------------------------------------------
#
# Applied by `GenopsGroup` (the root group class, cli/root.py) to every command as it is built, so a command module
# cannot forget them: `--ledger` and `--config` are accepted after the subcommand too (`genops compliance verify
# --ledger X`), and every command that prints results takes both `--format` and `--json` (the alias of `--format
# json`).

_GLOBAL_HELP = {
    "ledger": "Ledger path (DuckDB) or postgresql:// URL; same as the global --ledger (env GENOPS_LEDGER).",
    "config": "Path of .genops.yml; same as the global --config (env GENOPS_CONFIG).",
}


@functools.cache
def _convention_params() -> dict[str, Any]:
    """The click parameters the conventions add, built by typer itself (so help renders like any other option).
    Built once: a parameter holds no per-invocation state, so every command can share it."""
    mini = typer.Typer()

    @mini.command()
    def options(
        ledger: str = typer.Option(None, "--ledger", help=_GLOBAL_HELP["ledger"], rich_help_panel="Global options"),
        config: str = typer.Option(None, "--config", help=_GLOBAL_HELP["config"], rich_help_panel="Global options"),
        genops_format: str = typer.Option(None, "--format", help="Output format: table|json (table on a terminal)."),
        genops_json: bool = typer.Option(False, "--json", help="JSON on stdout; the same as --format json."),
    ) -> None:  # pragma: no cover - only its parameters are used
        pass

    mini.command()(lambda: None)  # two commands: get_command builds a group, keeping names
    group = typer.main.get_command(mini)
    return {p.name: p for p in group.commands["options"].params}  # type: ignore[attr-defined]


def _option_named(command: Any, flag: str) -> Any:
    return next((p for p in command.params if flag in getattr(p, "opts", ())), None)


def _apply_conventions(command: Any) -> None:
    """Add the global and output options a leaf command lacks, and map them onto its own parameters."""
    extra = _convention_params()
    added: list[str] = []
    for name, flag in (("ledger", "--ledger"), ("config", "--config")):
        if _option_named(command, flag) is None:
            command.params.append(extra[name])
            added.append(name)
    fmt_param, json_param = _option_named(command, "--format"), _option_named(command, "--json")
    if fmt_param is not None and json_param is None:
        command.params.append(extra["genops_json"])
        added.append("genops_json")
    elif json_param is not None and fmt_param is None:
        command.params.append(extra["genops_format"])
        added.append("genops_format")
    if not added:
        return
    original = command.callback

    @functools.wraps(original)
    def callback(**kwargs: Any) -> Any:
        for name in ("ledger", "config"):
            if name in added and kwargs.get(name) is not None:
                setattr(GLOBAL, name, kwargs[name])
        for name in ("ledger", "config"):
            if name in added:
                kwargs.pop(name, None)
        if "genops_json" in added and kwargs.pop("genops_json"):
            current = kwargs.get(fmt_param.name)
            if current not in (None, "json", fmt_param.default):
                raise fail(f"--json conflicts with --format {current}; give one of them")
            kwargs[fmt_param.name] = "json"
        if "genops_format" in added:
            value = kwargs.pop("genops_format")
            if value is not None:
                if value.lower() not in ("table", "json"):
                    raise fail(f"--format {value!r}: use table or json (or --json)")
                if value.lower() == "json":
                    kwargs[json_param.name] = True
        return original(**kwargs)

    command.callback = callback


def apply_conventions(command: Any, path: str = "") -> None:
    """Walk a click command tree and apply the conventions to every leaf command (and to a group that runs by
    itself, like `genops runs`); commands without examples at the end of their help get them from examples.py."""
    from genops_cli.cli.examples import epilog_for

    subcommands = getattr(command, "commands", None)
    if subcommands is None or getattr(command, "invoke_without_command", False):
        _apply_conventions(command)
        if not command.epilog and "Examples" not in (command.help or ""):
            command.epilog = epilog_for(path)
    if subcommands is None:
        return
    for name, sub in subcommands.items():
        apply_conventions(sub, f"{path} {name}".strip())
