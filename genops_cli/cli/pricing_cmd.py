"""`genops pricing ...`: look up the price book (genai-prices plus genops overlays).

This module must stay light: no haystack import.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from genops_cli.cli.common import fail, handle_errors, print_json, stderr_console
from genops_cli.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from genops_cli.pricing import PriceBook, ResolvedPrice

app = typer.Typer(
    help="Look up model prices: genai-prices plus the overlays in pricing/ and $GENOPS_PRICING_DIR.",
    no_args_is_help=True,
)

_PRICE_COLUMNS = (
    ("input_mtok", "input /1M"),
    ("cache_read_mtok", "cache read /1M"),
    ("cache_write_mtok", "cache write /1M"),
    ("output_mtok", "output /1M"),
    ("per_call", "per call"),
    ("per_second", "per second"),
)


def _book() -> PriceBook:
    # Imported here: genai-prices costs ~0.15 s to import and `genops --help` must stay fast.
    from genops_cli.pricing import get_price_book

    return get_price_book()


def _parse_at(at: str | None) -> datetime | None:
    """`--at` as a UTC datetime (None: now); a bad value is a one-line usage error, exit 2."""
    if not at:
        return None
    from genops_cli.pricing import parse_when

    try:
        return parse_when(at)
    except ValueError:
        raise fail(f"--at: expected YYYY-MM-DD or an ISO timestamp, got {at!r}") from None


def _console() -> Console:
    from genops_cli.cli.common import console_class

    Console = console_class()  # noqa: N806 - rich's Console, control characters in user strings shown as escapes
    # A terminal gets its own width; pipes get a wide plain table instead of rich's 80-column default.
    return Console(markup=False, emoji=False) if sys.stdout.isatty() else Console(width=200, markup=False, emoji=False)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return format(value, "f") if isinstance(value, Decimal) else str(value)


#: A name no real model has: overlay rules that match it match anything.
_ANY_NAME_PROBE = "genops-probe-no-model-has-this-name-7f3a9c"


def _unknown_message(book: PriceBook, model: str, provider: str | None, when: str) -> str:
    message = f"no price for {provider or '?'}:{model} at {when}"
    base = model.strip().lower()
    if provider is None:
        # A rule matching any name (in-process models priced at zero, per call or per second) says nothing about
        # this model: suggesting its provider would price a typo.
        providers = sorted({p for m in book.overlays.models
                            if m.match.matches(base) and not m.match.matches(_ANY_NAME_PROBE) for p in m.providers})
        if providers:
            return f"{message}; the overlays know it with --provider {' or '.join(providers)}"
    from genops_cli.pricing import overlay_dirs

    dirs = ", ".join(str(d) for d in overlay_dirs())
    names = sorted({rp.model.lower() for rp in book.list_models()})
    import difflib

    close = difflib.get_close_matches(base, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see genops pricing list"
    return (f"{message}: neither {book.genai_snapshot_id} nor the overlays ({dirs}) know it{hint} "
            "(a model genops should price: add it to an overlay file, format in pricing/local.yml)")


def _show_table(rp: ResolvedPrice, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"{rp.provider}:{rp.model}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("source", rp.source)
    table.add_row("snapshot", rp.snapshot_id)
    if rp.variant:
        table.add_row("variant", rp.variant)
    contracted = rp.contract is not None
    for key, label in _PRICE_COLUMNS:
        listed, billed = getattr(rp.list_prices, key), getattr(rp.unit_prices, key)
        if listed is None and billed is None:
            continue
        value = f"{_fmt(listed)} USD"
        if contracted:
            value = (f"list {_fmt(listed)} / contracted {_fmt(getattr(rp.contracted_prices, key))} "
                     f"/ billed {_fmt(billed)}")
        table.add_row(label, value)
    for tier in rp.tiers:
        table.add_row(f"tier {tier.price_key}", f"above {tier.start_tokens} input tokens: {_fmt(tier.list_price)} "
                                                f"(billed {_fmt(tier.billed_price)})")
    if contracted:
        table.add_row("contract", f"{rp.contract} (tenant {rp.tenant})")
    table.add_row("context window", _fmt(rp.context_window))
    table.add_row("max output tokens", _fmt(rp.max_output_tokens))
    if rp.valid_from or rp.valid_until:
        table.add_row("valid", f"{rp.valid_from.date() if rp.valid_from else '...'} to "
                               f"{rp.valid_until.date() if rp.valid_until else '...'} (until exclusive)")
    if rp.note:
        table.add_row("note", rp.note)
    console.print(table)


@app.command("show")
@handle_errors
def show(
    model: Annotated[str, typer.Argument(help="Model id as called, e.g. gpt-4o-2024-08-06 or gpt-4o-mini@batch.")],
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="Provider id (openai, anthropic, "
                                                  "ollama, ...); a -batch suffix asks for the batch price.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Price at this date (YYYY-MM-DD) or ISO timestamp, UTC; "
                                           "default now.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Apply this tenant's contract (list vs billed).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON with decimal strings.")] = False,
) -> None:
    """Show the prices that apply to MODEL (and where they come from)."""
    when = _parse_at(at)
    book = _book()
    resolved = book.resolve(model, provider, when, tenant)
    if resolved is None:
        shown = (when or datetime.now(timezone.utc)).date().isoformat()
        raise fail(_unknown_message(book, model, provider, shown))
    if as_json:
        typer.echo(json.dumps(resolved.to_json(), indent=2))
        return
    _show_table(resolved, _console())


@app.command("list")
@handle_errors
def list_models(
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="Only this provider.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON with decimal strings.")] = False,
) -> None:
    """List current list prices of known models (overlays first, then genai-prices)."""
    book = _book()
    if provider is not None and provider.strip().lower() not in book.providers():
        raise fail(f"--provider: unknown provider {provider!r}; known: {', '.join(book.providers())}")
    models = book.list_models(provider)
    if as_json:
        typer.echo(json.dumps([rp.to_json() for rp in models], indent=2))
        return
    console = _console()
    from rich.table import Table

    table = Table(title=f"{len(models)} models" + (f" ({provider})" if provider else ""), title_justify="left")
    table.add_column("provider")
    table.add_column("model")
    for _, label in _PRICE_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("source")
    for rp in models:
        table.add_row(rp.provider, rp.model, *(_fmt(getattr(rp.list_prices, k)) for k, _ in _PRICE_COLUMNS),
                      rp.source)
    console.print(table)


@app.command("check")
@handle_errors
def check(
    pipeline: Annotated[str | None, typer.Argument(help="Haystack pipeline YAML.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Price date (YYYY-MM-DD); default now.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Apply this tenant's contract.")] = None,
    all_overlays: Annotated[bool, typer.Option("--all", help="List where the overlays and genai-prices disagree "
                                                             "(prices, tiers, models genai-prices lacks).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Is every model the pipeline calls priced? Exit 0 when all are, 1 when one is not, 2 on a bad file.
    With --all (no pipeline): every overlay entry set against genai-prices, field by field."""
    from genops_cli.execution.loading import profile_pipeline_data, read_pipeline_file

    if all_overlays:
        _check_all(_parse_at(at), json_output)
        return
    if pipeline is None:
        raise UsageError("give a pipeline YAML to check, or --all to compare the overlays with genai-prices")

    path, _text, data = read_pipeline_file(pipeline)
    profile = profile_pipeline_data(path, data)
    when = _parse_at(at)
    book = _book()
    rows: list[dict[str, Any]] = []
    for comp in profile.llm_components():
        entry: dict[str, Any] = {"component": comp.name, "type": comp.type_name, "provider": comp.provider,
                                 "model": comp.model, "priced": False, "source": None, "unit_prices": None,
                                 "max_tokens": comp.max_tokens}
        if comp.model:
            resolved = book.resolve(comp.model, comp.provider, when, tenant)
            if resolved is not None:
                entry.update(priced=True, source=resolved.source, unit_prices=resolved.unit_prices.to_json(),
                             provider=resolved.provider)
        rows.append(entry)
    unpriced = [r for r in rows if not r["priced"]]
    if json_output:
        print_json({"pipeline": profile.name, "components": rows, "all_priced": not unpriced})
    else:
        console = _console()
        from rich.table import Table

        table = Table(title=f"{profile.name}: {len(rows)} priced component(s)", title_justify="left")
        for column in ("component", "provider", "model", "priced", "source", "max_tokens"):
            table.add_column(column)
        for r in rows:
            table.add_row(r["component"], r["provider"] or "?", r["model"] or "(no model)",
                          "yes" if r["priced"] else "NO", r["source"] or "-", str(r["max_tokens"] or "-"))
        console.print(table)
        for r in unpriced:
            stderr_console().print(f"unpriced: {r['component']} ({r['provider'] or '?'}:{r['model'] or 'no model'}); "
                                   "add it to an overlay in pricing/ or $GENOPS_PRICING_DIR", markup=False)
    raise typer.Exit(1 if unpriced else 0)


def _check_all(when: Any, json_output: bool) -> None:
    found = _book().disagreements(when)
    if json_output:
        print_json({"disagreements": [d.to_json() for d in found]})
        return
    console = _console()
    from rich.table import Table

    table = Table(title=f"Overlays vs genai-prices: {len(found)} difference(s)", title_justify="left")
    for column in ("overlay", "provider", "model", "kind", "field", "overlay price", "genai-prices"):
        table.add_column(column)
    for d in found:
        table.add_row(d.source, d.provider, d.model + (f"@{d.variant}" if d.variant else ""), d.kind, d.field,
                      "-" if d.overlay is None else format(d.overlay, "f"),
                      "-" if d.genai is None else format(d.genai, "f"))
    console.print(table)
