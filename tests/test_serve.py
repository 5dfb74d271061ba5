"""`genops serve` over real HTTP on loopback: the exposition parsed with prometheus_client's own parser, each
value equal to the ledger's exact Decimal sum; JSON endpoints; read-only; caching; the real process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, ledger_rows, sample

prometheus_client = pytest.importorskip("prometheus_client")


def _record_runs(openai_server) -> None:
    openai_server.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    for customer, team, prompt_tokens in (("acme-corp", "ml", 1000), ("acme-corp", "ml", 333),
                                          ("globex", "search", 777)):
        openai_server.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 41}
        result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--team", team,
                     "--customer", customer, "--json")
        assert result.exit_code == 0, result.stderr
    # A simulated run: counted as a run, never as spend.
    result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--customer", "acme-corp",
                 "--simulate", "--json")
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def server(ledger_path):
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.service.server import make_server

    srv = make_server(open_ledger(str(ledger_path)), load_settings(None, None), port=0, refresh_seconds=0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(srv, path: str) -> tuple[int, str, str]:
    host, port = srv.server_address[:2]
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _exact(value: float) -> Decimal:
    return Decimal(repr(value))


def test_metrics_equal_the_ledgers_decimal_sums(openai_server, server):
    _record_runs(openai_server)
    status, content_type, body = _get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(body)
    for label, column in (("customer", "customer_id"), ("team", "team"), ("pipeline", "pipeline_name")):
        for key, total in ledger_rows(f"SELECT COALESCE({column}, ''), SUM(total_cost) FROM runs "
                                      f"WHERE NOT simulated GROUP BY 1"):
            value = samples[(f"genops_spend_{label}_usd_total", ((label, key),))]
            assert _exact(value) == total, (label, key)
    [(acme,)] = ledger_rows("SELECT SUM(total_cost) FROM runs WHERE customer_id = 'acme-corp' AND NOT simulated")
    assert _exact(samples[("genops_spend_customer_usd_total", (("customer", "acme-corp"),))]) == acme
    for provider, model, cost in ledger_rows(
            "SELECT c.provider, c.model, SUM(c.cost) FROM calls c JOIN runs r USING (run_id) "
            "WHERE NOT r.simulated AND c.model IS NOT NULL GROUP BY 1, 2"):
        key = ("genops_spend_model_usd_total", (("model", model), ("provider", provider)))
        assert _exact(samples[key]) == cost
    assert samples[("genops_runs_total", (("simulated", "false"), ("status", "ok")))] == 3
    assert samples[("genops_runs_total", (("simulated", "true"), ("status", "ok")))] == 1
    assert samples[("genops_unpriced_calls_total", ())] == 0
    assert samples[("genops_spool_depth", ())] == 0
    assert samples[("genops_ledger_lag_seconds", ())] == 0


def test_budget_gauges_follow_the_ledger(openai_server, server):
    _record_runs(openai_server)
    assert cli("budget", "set", "customer:acme-corp", "--daily", "0.01", "--policy", "enforcing").exit_code == 0
    samples = _samples(_get(server, "/metrics")[2])
    labels = (("period", "daily"), ("policy", "enforcing"), ("scope", "customer:acme-corp"))
    assert _exact(samples[("genops_budget_limit_usd", labels)]) == Decimal("0.01")
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs WHERE customer_id = 'acme-corp' AND NOT simulated")
    assert _exact(samples[("genops_budget_spent_usd", labels)]) == spent
    assert _exact(samples[("genops_budget_utilization_ratio", labels)]) == _exact(float(spent / Decimal("0.01")))


def test_counters_stay_monotonic_across_a_restart(openai_server, ledger_path):
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.service.metrics import read_snapshot

    _record_runs(openai_server)
    before = read_snapshot(open_ledger(str(ledger_path)), load_settings(None, None))
    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 1}
    assert cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--customer", "globex").exit_code == 0
    after = read_snapshot(open_ledger(str(ledger_path)), load_settings(None, None))  # a new process reads anew
    old, new = dict(before.spend["customer"]), dict(after.spend["customer"])
    assert new["acme-corp"] == old["acme-corp"] and new["globex"] > old["globex"]


def test_spool_depth_and_lag_are_reported(server, ledger_path):
    import os

    from ledger_factory import at, make_run

    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger

    spool = Spool(open_ledger(str(ledger_path)).spool_dir())
    written = spool.write(make_run("acme-corp", at("2026-11-02"), [{"model": "gpt-4o-mini", "input": 10}]))
    old = time.time() - 120
    os.utime(written, (old, old))
    samples = _samples(_get(server, "/metrics")[2])
    assert samples[("genops_spool_depth", ())] == 1
    assert samples[("genops_ledger_lag_seconds", ())] >= 119


def test_json_costs_match_analyze(openai_server, server):
    _record_runs(openai_server)
    status, content_type, body = _get(server, "/v1/costs?by=customer&since=7d")
    assert status == 200 and content_type == "application/json"
    served = json.loads(body)
    analyzed = json.loads(cli("analyze", "--by", "customer", "--since", "7d", "--format", "json").stdout)
    assert served["total_cost"] == analyzed["total_cost"]
    assert {g["key"]: g["cost"] for g in served["groups"]} == {g["key"]: g["cost"] for g in analyzed["groups"]}


def test_bad_queries_are_400_with_the_parameter_named(server):
    status, _, body = _get(server, "/v1/costs?by=planet")
    assert status == 400 and "planet" in json.loads(body)["error"]
    status, _, body = _get(server, "/v1/costs?colour=red")
    assert status == 400 and "colour" in json.loads(body)["error"]
    status, _, body = _get(server, "/v1/costs?since=forever")
    assert status == 400
    assert _get(server, "/nope")[0] == 404


def test_health_ready_and_read_only(server, ledger_path):
    assert _get(server, "/health")[0] == 200
    status, _, body = _get(server, "/ready")
    assert status == 503 and "no ledger" in json.loads(body)["reason"]
    assert cli("budget", "set", "team:ml", "--daily", "1").exit_code == 0  # creates the ledger
    assert _get(server, "/ready")[0] == 200
    host, port = server.server_address[:2]
    req = urllib.request.Request(f"http://{host}:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 405


def test_scrapes_within_the_refresh_interval_read_the_ledger_once(openai_server, ledger_path):
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.service.server import make_server

    _record_runs(openai_server)
    srv = make_server(open_ledger(str(ledger_path)), load_settings(None, None), port=0, refresh_seconds=3600)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for _ in range(20):
            assert _get(srv, "/metrics")[0] == 200
        assert srv.service.snapshots.refreshes == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_process_binds_loopback_and_stops_on_sigterm(openai_server, ledger_path):
    import signal

    _record_runs(openai_server)
    exe = Path(sys.executable).with_name("genops")
    proc = subprocess.Popen([str(exe), "serve", "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"http://([\d.]+):(\d+)/metrics", line)
        assert match, line
        assert match.group(1) == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{match.group(2)}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        assert "genops_spend_customer_usd_total" in text
        assert "sk-" not in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_json_runs_with_the_clis_filters(openai_server, server):
    _record_runs(openai_server)
    status, _, body = _get(server, "/v1/runs?customer=acme-corp&limit=10")
    assert status == 200
    runs = json.loads(body)["runs"]
    listed = json.loads(cli("runs", "--customer", "acme-corp", "--limit", "10", "--json").stdout)
    listed = listed["runs"] if isinstance(listed, dict) else listed
    assert [r["run_id"] for r in runs] == [r["run_id"] for r in listed]
    assert len(runs) == 3  # two real runs and the simulated one, newest first
    real = json.loads(_get(server, "/v1/runs?customer=acme-corp&include_simulated=false")[2])["runs"]
    assert len(real) == 2
    assert _get(server, "/v1/runs?limit=0")[0] == 400
    assert _get(server, "/v1/runs?status=weird")[0] == 400
