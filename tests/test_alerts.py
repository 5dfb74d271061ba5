"""Budget alerts: once per threshold per period, a line on stderr, an audited `alerts` row, and a webhook POST
(loopback server) that can never fail the run."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, genops_subprocess, json_lines, ledger_rows, sample
from webhook_sink import WebhookSink

RAG = ("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")
RUN_COST = Decimal("0.00045")  # gpt-4o-mini, 1000 input + 500 output tokens


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    hook = WebhookSink("/genops")
    yield hook
    hook.close()


@pytest.fixture
def priced_server(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    return openai_server


def _config(tmp_path: Path, url: str, timeout: float = 3) -> None:
    (tmp_path / ".genops.yml").write_text(f"alerts:\n  webhook_url: {url}\n  timeout_seconds: {timeout}\n")


def _run() -> dict[str, Any]:
    from genops_cli.policy import alerts

    result = cli(*RAG)
    alerts.flush(10)
    assert result.exit_code == 0, result.stderr
    return json_lines(result.stdout)[0]


def test_webhook_receives_each_threshold_exactly_once(priced_server, webhook, tmp_path):
    from genops_cli.ledger import audit
    from genops_cli.ledger.store import open_ledger

    _config(tmp_path, webhook.url)
    assert cli("budget", "set", "global", "--daily", "0.0009", "--alert-at", "50,100").exit_code == 0
    first = _run()  # 50 % of the limit
    assert [b["threshold"] for b in webhook.bodies] == [50]
    _run()  # 100 %
    _run()  # 150 %: both thresholds already fired in this period
    _run()
    assert [b["threshold"] for b in webhook.bodies] == [50, 100]
    fifty, hundred = webhook.bodies
    assert (fifty["event"], fifty["scope"], fifty["period"], fifty["spent"], fifty["limit"], fifty["utilization"]) == (
        "genops.budget.alert", "global", "daily", "0.00045", "0.0009", "50.00")
    assert fifty["run_id"] == first["run_id"] and fifty["policy"] == "advisory"
    assert (hundred["spent"], hundred["utilization"]) == ("0.0009", "100.00")
    rows = ledger_rows("SELECT threshold, spent, webhook_status FROM alerts ORDER BY threshold")
    assert rows == [(50, RUN_COST, "http 204"), (100, 2 * RUN_COST, "http 204")]
    # each alert is audited when fired and again when its webhook status is stored; the chain verifies
    assert ledger_rows("SELECT COUNT(*) FROM audit_log WHERE kind = 'alert'") == [(4,)]
    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        assert audit.verify(tx)[1] == []
    status = json_lines(cli("budget", "status", "global", "--json").stdout)[0]
    assert [a["threshold"] for a in status[0]["alerts_fired"]] == [50, 100]


def test_alert_line_on_stderr_and_json_stays_clean(priced_server):
    assert cli("budget", "set", "team:ml", "--daily", "0.0004", "--policy", "advisory").exit_code == 0
    proc = genops_subprocess(*RAG, "--team", "ml")
    assert proc.returncode == 0, proc.stderr
    [out] = json_lines(proc.stdout)  # stdout is the run's JSON object only
    assert out["policy"]["result"] == "ALLOWED"  # the worst case fitted; the actual spend went over
    # One run crossed the four thresholds at once: one line on the terminal, four rows (each fires once).
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("genops alert:")]
    assert line == ("genops alert: team:ml daily budget (" + out["started_at"][:10] + ") reached 100% threshold "
                    "(and 50%, 80%, 95%): $0.00045 of $0.0004 spent (112.50%)")
    assert ledger_rows("SELECT COUNT(*), MIN(webhook_status) FROM alerts") == [(4, None)]


def test_unreachable_webhook_never_fails_the_run(priced_server, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _config(tmp_path, f"http://127.0.0.1:{port}/hook", timeout=0.5)
    cli("budget", "set", "global", "--daily", "0.0001")
    out = _run()
    assert out["status"] == "ok" and Decimal(out["total_cost"]) == RUN_COST
    statuses = [s for (s,) in ledger_rows("SELECT webhook_status FROM alerts")]
    assert len(statuses) == 4 and all(s.startswith("error:") for s in statuses)
    assert all(str(port) not in s for s in statuses)  # the URL (often a secret) is never stored


def _record(cost: str, started_at: datetime, simulated: bool = False) -> None:
    from genops_cli.ledger.records import record_run
    from genops_cli.ledger.store import open_ledger
    from genops_cli.models import RunRecord

    run = RunRecord(run_id=str(uuid.uuid4()), pipeline_name="rag", pipeline_hash="h", started_at=started_at,
                    ended_at=started_at, total_cost=Decimal(cost), simulated=simulated)
    assert record_run(open_ledger(os.environ["GENOPS_LEDGER"]), run).ok


def test_thresholds_fire_again_in_the_next_period_only():
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.policy.budgets import set_budget
    from genops_cli.startup import install_hooks

    install_hooks(load_settings())
    set_budget(open_ledger(os.environ["GENOPS_LEDGER"]), load_settings(), "global", daily=Decimal("1"),
               alert_at=(50,), timezone="Europe/Berlin")
    day = datetime(2026, 6, 1, 8, tzinfo=timezone.utc)
    _record("0.60", day)
    _record("0.10", day + timedelta(hours=2))
    _record("5.00", day + timedelta(hours=3), simulated=True)  # simulated: no spend, no alert
    _record("0.70", day + timedelta(hours=14))  # 00:00 CEST: the next day in Berlin
    assert ledger_rows("SELECT period, period_key, threshold, spent FROM alerts ORDER BY period_key") == [
        ("daily", "2026-06-01", 50, Decimal("0.6")), ("daily", "2026-06-02", 50, Decimal("0.7"))]
