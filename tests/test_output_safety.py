"""Output safety: tenant names and other user strings are data, never formulas, markup or file paths.

- every CSV genops writes (report csv and FOCUS, analyze, ledger export, runs list) neutralises cells that a
  spreadsheet would execute (= + - @ tab CR: prefixed with a single quote); numbers stay numbers;
- Markdown reports escape HTML in user strings;
- `report --all-tenants` writes one distinct file per tenant, and says so when it replaces a file.
"""

from __future__ import annotations

import csv
import io

import pytest
from conftest import cli, sample

FORMULA = '=HYPERLINK("http://evil.example","click")'
HOSTILE_TENANTS = [FORMULA, "@SUM(A1:A9)", "+cmd|' /C calc'!A0", "-2+3", "\tTAB", "\rCR"]
PERIOD = None  # the current month


def _record(tenant: str, team: str = "ml") -> None:
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--customer", tenant,
                 "--team", team, "--json")
    assert result.exit_code == 0, result.stderr


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def _assert_inert(text: str, where: str) -> None:
    import re

    number = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
    for cell in _cells(text):
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            assert number.match(cell), f"live formula cell {cell!r} in {where}"


@pytest.fixture
def hostile_tenants(openai_server):
    for tenant in HOSTILE_TENANTS:
        _record(tenant, team="=cmd()")
    return HOSTILE_TENANTS


def test_csv_cells_are_neutralised_in_every_writer(hostile_tenants, tmp_path):
    outputs: dict[str, str] = {}
    for tenant in hostile_tenants:
        for fmt in ("csv", "focus"):
            result = cli("report", "--tenant", tenant, "--format", fmt)
            assert result.exit_code == 0, result.stderr
            outputs[f"report {fmt} {tenant!r}"] = result.stdout
    result = cli("analyze", "--by", "customer", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    outputs["analyze"] = result.stdout
    for table in ("runs", "calls"):
        out = tmp_path / f"{table}.csv"
        assert cli("ledger", "export", "--table", table, "--format", "csv", "--out", str(out)).exit_code == 0
        outputs[f"export {table}"] = out.open(encoding="utf-8", newline="").read()
    result = cli("runs", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    outputs["runs list"] = result.stdout
    for where, text in outputs.items():
        _assert_inert(text, where)
    # the tenant is still there, readable, behind the quote
    assert "'" + FORMULA in _cells(outputs["analyze"])
    assert "'" + FORMULA in _cells(outputs["export runs"])


def test_negative_numbers_are_not_quoted():
    from genops_cli.safe_output import csv_cell

    assert [csv_cell(v) for v in ("-0.25", "+3", "1e-5", "-1E+2", "-", "-x", "=1", "@a", 5, None)] == [
        "-0.25", "+3", "1e-5", "-1E+2", "'-", "'-x", "'=1", "'@a", 5, None]


def test_markdown_report_escapes_html_in_tenant_names(openai_server):
    tenant = '<img src=x onerror=alert(1)>[click](http://evil.example)'
    _record(tenant)
    result = cli("report", "--tenant", tenant, "--format", "md")
    assert result.exit_code == 0, result.stderr
    assert "<img" not in result.stdout
    assert "&lt;img src=x onerror=alert(1)&gt;" in result.stdout
    assert "](http://evil.example)" not in result.stdout.replace("\\]", "")  # no live link
    html_report = cli("report", "--tenant", tenant, "--format", "html")
    assert "<img src=x" not in html_report.stdout


def test_all_tenants_files_are_distinct_and_never_overwritten_silently(openai_server, tmp_path):
    tenants = ["globex/eu", "globex_eu", "Acme", "acme", "../escape", "con"]
    for tenant in tenants:
        _record(tenant)
    out_dir = tmp_path / "bills"
    result = cli("report", "--all-tenants", "--period", _current_month(), "--out-dir", str(out_dir),
                 "--format", "json")
    assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in out_dir.iterdir())
    assert len(files) == len(tenants), files
    assert len({f.casefold() for f in files}) == len(tenants)  # distinct on case-insensitive file systems too
    assert all(p.resolve().parent == out_dir.resolve() for p in out_dir.iterdir())  # nothing escaped the folder
    import json

    billed = {json.loads(p.read_text(encoding="utf-8"))["tenant"] for p in out_dir.iterdir()}
    assert billed == set(tenants)
    assert f"wrote {len(tenants)} tenant report(s)" in result.stderr
    again = cli("report", "--all-tenants", "--period", _current_month(), "--out-dir", str(out_dir),
                "--format", "json")
    assert again.exit_code == 0
    assert again.stderr.count("replacing") == len(tenants)


def _current_month() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m")


def test_every_csv_writer_goes_through_the_helper():
    """A new CSV output must use genops_cli.safe_output (the only raw writer left is the Parquet export's internal
    staging file, which must round-trip values exactly and is never opened by a person)."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "genops_cli"
    raw = []
    for path in package.rglob("*.py"):
        if path.name == "safe_output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "csv" \
                    and node.attr in ("writer", "DictWriter"):
                raw.append(f"{path.relative_to(package)}:{node.lineno}")
    assert len(raw) <= 1 and all(r.startswith("ledger/maintenance.py:") for r in raw), raw
