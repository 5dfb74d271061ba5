"""The HTML invoice and compliance page: self-contained (no network), rendered by headless Chromium, showing the
exact total and a daily-cost chart; Markdown from the same templates."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import cli
from ledger_factory import at, make_run, record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
                                                             ".ci/run installs it)")


def _seed() -> None:
    record(make_run("acme-corp", at("2026-05-02"), [{"model": "gpt-4o-mini", "input": 12000, "output": 3000}]),
           make_run("acme-corp", at("2026-05-09"), [{"model": "gpt-4o", "input": 40000, "output": 9000}]),
           make_run("acme-corp", at("2026-05-20"), [{"model": "claude-3-haiku-20240307", "provider": "anthropic",
                                                     "input": 20000, "output": 2000}]))


def _html(tmp_path: Path) -> Path:
    _seed()
    out = tmp_path / "invoice.html"
    result = cli("report", "--tenant", "acme-corp", "--period", "2026-05", "--format", "html", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120)


def test_html_is_self_contained_with_an_inline_svg_chart(tmp_path):
    html = _html(tmp_path).read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # no network fetches
    assert "<script" not in html and "@import" not in html
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="daily-chart"' in html
    assert html.count("<rect ") == 31  # one bar per day of May
    # 12000 x 0.15 + 3000 x 0.60 + 40000 x 2.50 + 9000 x 10 + 20000 x 0.25 + 2000 x 1.25 (USD per 1M tokens)
    assert 'id="total-cost">$0.201100</div>' in html


@needs_chromium
def test_chromium_renders_the_invoice_with_its_total(tmp_path):
    page = _html(tmp_path)
    png = tmp_path / "invoice.png"
    shot = _chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,1600", page.as_uri())
    assert png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a real page, not a blank one
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert 'id="total-cost">$0.201100<' in dom.stdout
    assert "gpt-4o input tokens (rag)" in dom.stdout and 'id="daily-chart"' in dom.stdout


@needs_chromium
def test_chromium_renders_the_compliance_page(tmp_path):
    _seed()
    out = tmp_path / "compliance.html"
    assert cli("compliance", "report", "--days", "100000", "--format", "html", "--out", str(out)).exit_code == 0
    dom = _chromium(tmp_path, "--dump-dom", out.as_uri())
    assert 'id="total-operations">3<' in dom.stdout and "GenOps spec v0.1 conformance" in dom.stdout


def test_markdown_report_lists_lines_and_total(tmp_path):
    _seed()
    result = cli("report", "--tenant", "acme-corp", "--period", "2026-05", "--format", "md")
    assert result.exit_code == 0
    assert "| **Total due** | **$0.201100** |" in result.stdout
    line = "| gpt-4o input tokens (rag) | openai | 40,000 tokens | 1M tokens | $2.50 | $2.50 | $0.100000 |"
    assert line in result.stdout


def test_html_escapes_tenant_ids(tmp_path):
    record(make_run("<b>evil</b>", at("2026-05-02"), [{"model": "gpt-4o-mini", "input": 10, "output": 1}]))
    out = tmp_path / "x.html"
    cli("report", "--tenant", "<b>evil</b>", "--period", "2026-05", "--format", "html", "--out", str(out))
    assert "&lt;b&gt;evil&lt;/b&gt;" in out.read_text() and "<b>evil</b>" not in out.read_text()
