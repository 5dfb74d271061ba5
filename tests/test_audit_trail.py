"""An audit trail that answers who, what and when: actors and before/after values on audit entries, checkpoints
that catch a deleted tail, purges that keep the chain verifiable, legal holds, and exports for auditors."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from conftest import cli, ledger_rows, sample


def _runs(openai_server, customers=("acme-corp", "acme-corp", "globex")) -> None:
    for customer in customers:
        result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--customer", customer,
                     "--quiet")
        assert result.exit_code == 0, result.stderr


def _verify(*extra: str):
    result = cli("compliance", "verify", "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


def test_budget_changes_record_the_actor_and_the_values_before_and_after(monkeypatch):
    monkeypatch.setenv("GENOPS_ACTOR", "alice@finops")
    assert cli("budget", "set", "team:ml", "--daily", "5", "--policy", "enforcing").exit_code == 0
    monkeypatch.setenv("GENOPS_ACTOR", "bob@laptop")
    assert cli("budget", "set", "team:ml", "--daily", "7", "--policy", "advisory").exit_code == 0
    assert cli("budget", "remove", "team:ml").exit_code == 0
    rows = ledger_rows("SELECT actor, change FROM audit_log WHERE kind = 'budget' ORDER BY seq")
    assert [r[0] for r in rows] == ["alice@finops", "bob@laptop", "bob@laptop"]
    created, edited, removed = (json.loads(r[1]) for r in rows)
    assert created["before"] == [] and created["after"][0]["daily_limit"].startswith("5.")
    assert Decimal(edited["before"][0]["daily_limit"]) == 5 and edited["before"][0]["policy"] == "enforcing"
    assert Decimal(edited["after"][0]["daily_limit"]) == 7 and edited["after"][0]["policy"] == "advisory"
    assert Decimal(removed["before"][0]["daily_limit"]) == 7 and removed["after"] == []
    assert _verify()[0] == 0


def test_actor_and_change_are_covered_by_the_chain(monkeypatch):
    from genops_cli.ledger.store import open_ledger

    monkeypatch.setenv("GENOPS_ACTOR", "alice@finops")
    assert cli("budget", "set", "team:ml", "--daily", "5").exit_code == 0
    import os

    with open_ledger(os.environ["GENOPS_LEDGER"]).write() as tx:
        tx.execute("UPDATE audit_log SET actor = 'mallory@evil' WHERE kind = 'budget'")
    code, doc = _verify()
    assert code == 1 and doc["problems"][0]["problem"] == "chain"


def test_runs_record_the_actor_of_the_process_that_ran_them(openai_server, monkeypatch):
    monkeypatch.setenv("GENOPS_ACTOR", "ci-bot@runner-7")
    _runs(openai_server, ("acme-corp",))
    assert {r[0] for r in ledger_rows("SELECT actor FROM audit_log WHERE kind = 'run'")} == {"ci-bot@runner-7"}


def test_api_principal_is_the_actor():
    from genops_cli.ledger import audit

    with audit.acting_as("svc-checkout@api"):
        assert audit.current_actor() == "svc-checkout@api"
    assert audit.current_actor() != "svc-checkout@api"


def test_checkpoint_detects_deleting_the_newest_records(openai_server, tmp_path):
    import os

    from genops_cli.ledger.store import open_ledger

    _runs(openai_server)
    checkpoints = tmp_path / "elsewhere" / "checkpoints.jsonl"
    result = cli("compliance", "checkpoint", "--out", str(checkpoints), "--json")
    assert result.exit_code == 0, result.stderr
    taken = json.loads(result.stdout)
    assert json.loads(checkpoints.read_text().splitlines()[-1]) == taken
    assert _verify("--checkpoints", str(checkpoints))[0] == 0
    # Delete the newest run with its audit entry: the chain alone still verifies...
    with open_ledger(os.environ["GENOPS_LEDGER"]).write() as tx:
        seq, subject = tx.query("SELECT seq, subject_id FROM audit_log ORDER BY seq DESC LIMIT 1")[0]
        tx.execute("DELETE FROM audit_log WHERE seq = ?", [seq])
        tx.execute("DELETE FROM calls WHERE run_id = ?", [subject])
        tx.execute("DELETE FROM runs WHERE run_id = ?", [subject])
    assert _verify()[0] == 0
    # ... but not against the checkpoint kept outside the ledger.
    code, doc = _verify("--checkpoints", str(checkpoints))
    assert code == 1 and "deleted" in doc["checkpoints"]["problems"][0]
    text = cli("compliance", "verify", "--checkpoints", str(checkpoints))
    assert text.exit_code == 1 and "newest" in text.stderr


def test_checkpoint_refuses_a_broken_chain_and_posts_to_a_webhook(openai_server, tmp_path):
    import os

    from webhook_sink import WebhookSink

    _runs(openai_server, ("acme-corp",))
    with WebhookSink("/hook") as sink:
        url, received = sink.url, sink.bodies
        assert cli("compliance", "checkpoint", "--webhook", url).exit_code == 0
        assert received and received[0]["genops_checkpoint"]["seq"] >= 1
        from genops_cli.ledger.store import open_ledger

        with open_ledger(os.environ["GENOPS_LEDGER"]).write() as tx:
            tx.execute("UPDATE runs SET total_cost = total_cost + 1")
        broken = cli("compliance", "checkpoint", "--webhook", url)
        assert broken.exit_code == 1 and len(received) == 1


def test_purge_a_customer_keeps_the_chain_verifiable_and_forgets_the_name(openai_server):
    _runs(openai_server)
    [(before,)] = ledger_rows("SELECT COUNT(*) FROM runs WHERE customer_id = 'acme-corp'")
    assert before == 2
    dry = cli("ledger", "purge", "--customer", "acme-corp", "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["runs_removed"] == 2
    assert ledger_rows("SELECT COUNT(*) FROM runs")[0][0] == 3
    no_confirm = cli("ledger", "purge", "--customer", "acme-corp")
    assert no_confirm.exit_code == 2 and "--yes" in no_confirm.stderr
    done = cli("ledger", "purge", "--customer", "acme-corp", "--reason", "erasure request 88", "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["runs_removed"] == 2 and doc["rows_removed"]["calls"] > 0
    assert ledger_rows("SELECT COUNT(*) FROM runs WHERE customer_id = 'acme-corp'")[0][0] == 0
    assert ledger_rows("SELECT COUNT(*) FROM runs")[0][0] == 1
    assert _verify()[0] == 0
    [(criteria, reason)] = ledger_rows("SELECT criteria, reason FROM purges")
    assert "acme-corp" not in criteria and criteria.startswith("customer=sha256:") and reason == "erasure request 88"
    # Any other deletion is still detected.
    import os

    from genops_cli.ledger.store import open_ledger

    with open_ledger(os.environ["GENOPS_LEDGER"]).write() as tx:
        tx.execute("DELETE FROM runs")
    assert _verify()[0] == 1


def test_purge_before_a_date_and_nothing_without_criteria(openai_server):
    _runs(openai_server, ("acme-corp",))
    assert cli("ledger", "purge", "--before", "2000-01-01", "--yes", "--json").exit_code == 0
    assert ledger_rows("SELECT COUNT(*) FROM runs")[0][0] == 1
    everything = cli("ledger", "purge", "--before", "2999-01-01", "--yes", "--json")
    assert everything.exit_code == 0 and json.loads(everything.stdout)["runs_removed"] == 1
    assert _verify()[0] == 0
    none = cli("ledger", "purge", "--yes")
    assert none.exit_code == 2 and "--customer" in none.stderr and len(none.stderr.splitlines()) == 1
    bad = cli("ledger", "purge", "--before", "yesterday-ish", "--yes")
    assert bad.exit_code == 2 and "--before" in bad.stderr


def test_legal_hold_stops_a_purge_until_released(openai_server, monkeypatch):
    _runs(openai_server)
    monkeypatch.setenv("GENOPS_ACTOR", "counsel@legal")
    placed = cli("ledger", "hold", "set", "customer:acme-corp", "--reason", "case 2026-114", "--json")
    assert placed.exit_code == 0, placed.stderr
    hold_id = json.loads(placed.stdout)["hold_id"]
    refused = cli("ledger", "purge", "--customer", "acme-corp", "--yes")
    assert refused.exit_code == 3 and "legal hold" in refused.stderr and "case 2026-114" in refused.stderr
    assert ledger_rows("SELECT COUNT(*) FROM runs WHERE customer_id = 'acme-corp'")[0][0] == 2
    # Retention of everything is refused too while a held run would go.
    assert cli("ledger", "purge", "--before", "2999-01-01", "--yes").exit_code == 3
    assert cli("ledger", "purge", "--customer", "globex", "--yes").exit_code == 0  # not held
    listed = json.loads(cli("ledger", "hold", "list", "--json").stdout)
    assert [h["hold_id"] for h in listed] == [hold_id]
    assert cli("ledger", "hold", "release", hold_id[:8]).exit_code == 0
    assert cli("ledger", "purge", "--customer", "acme-corp", "--yes").exit_code == 0
    assert {r[0] for r in ledger_rows("SELECT actor FROM audit_log WHERE kind = 'hold'")} == {"counsel@legal"}
    assert _verify()[0] == 0


@pytest.mark.parametrize("table", ["audit_log", "policy_events", "purges", "legal_holds"])
def test_audit_tables_export(openai_server, tmp_path, table):
    _runs(openai_server, ("acme-corp",))
    assert cli("ledger", "hold", "set", "global", "--reason", "audit").exit_code == 0
    out = tmp_path / f"{table}.csv"
    result = cli("ledger", "export", "--table", table, "--format", "csv", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    header = out.read_text().splitlines()[0]
    assert header
    if table == "audit_log":
        assert "actor" in header and len(out.read_text().splitlines()) > 1


def test_the_api_principal_is_the_actor_of_its_runs(openai_server, tmp_path):
    import json as _json

    from genops.providers.haystack import GenOpsHaystackAdapter
    from haystack import Pipeline

    pipeline = Pipeline.loads(open(sample("rag")).read())
    adapter = GenOpsHaystackAdapter(team="ml", principal="svc-checkout@api")
    with adapter.track_pipeline("rag", pipeline=pipeline):
        pipeline.run(_json.loads(open(sample("rag", "inputs.json")).read()))
    adapter.flush()
    assert {r[0] for r in ledger_rows("SELECT actor FROM audit_log WHERE kind = 'run'")} == {"svc-checkout@api"}
