"""Grouped ingestion (`records.insert_runs`, used by the batch and API writers): many runs in one transaction with
multi-row statements, the same rows, rules and audit chain as one transaction per run — checked with
`audit.verify` on DuckDB and on PostgreSQL (GENOPS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ledger_factory import at, make_run

from genops_cli.ledger import audit
from genops_cli.ledger.records import drain, ingest, insert_run, insert_runs, rekeyed_run_id
from genops_cli.ledger.schema import column_types
from genops_cli.ledger.serialize import CALL_COLUMNS, RUN_COLUMNS
from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import open_ledger
from genops_cli.models import PolicyDecision, PolicyEvent, RunRecord
from genops_cli.policy import reservations

PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[str]:
    if request.param == "duckdb":
        yield os.environ["GENOPS_LEDGER"]
        return
    if not PG_URL:
        pytest.skip("GENOPS_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    import psycopg

    schema = f"genops_test_{uuid.uuid4().hex[:12]}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    monkeypatch.setenv("GENOPS_LEDGER", url)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield url
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _varied_run(index: int, when: datetime) -> RunRecord:
    """A run exercising every column shape: NULLs, tags, money with trailing zeros, floats, booleans, events."""
    run = make_run("acme" if index % 2 else None, when + timedelta(seconds=index, microseconds=123457),
                   [{"model": "gpt-4o-mini", "input": 1000 + index, "output": 200, "latency_ms": 12.3456789},
                    {"model": "gpt-4o", "input": 5, "cache_read": 3, "output": 1}],
                   team="ml" if index % 3 else None, feature="search")
    run.attribution.tags = {"env": "prod", "n": str(index)}
    run.batch_id = "b-1" if index % 2 else None
    run.batch_line = index if index % 2 else None
    run.calls[0].usage.raw = {"prompt_tokens": 1000 + index, "nested": {"x": [1, 2]}}
    run.calls[1].error = None if index % 2 else "rate limited"
    run.calls[1].status = "ok" if index % 2 else "error"
    run.calls[0].documents_retrieved = 3
    run.calls[0].max_tokens = 512
    if index % 4 == 0:
        run.policy_events.append(PolicyEvent(event_id=str(uuid.uuid4()), rule="budget:team:ml:daily",
                                             result="WARNING", reason_code="BUDGET_EXCEEDED",
                                             message=f"limit ${index}", enforced=False))
        run.policy_events.append(PolicyEvent(event_id=str(uuid.uuid4()), rule="compliance:models",
                                             result="ALLOWED"))
    return run


def _rows(tx, table: str, key: str) -> list[tuple]:
    return sorted(tx.query(f"SELECT * FROM {table} ORDER BY {key}"), key=repr)


def test_grouped_insert_stores_the_same_rows_and_a_verifying_chain(ledger_location):
    when = at("2025-03-04")
    runs = [_varied_run(i, when) for i in range(12)]
    grouped = open_ledger(ledger_location)
    with grouped.write() as tx:
        assert insert_runs(tx, runs) == [True] * 12
    with grouped.read() as tx:
        checked, problems = audit.verify(tx)
        assert problems == [] and checked == 12 + 2 * 3  # one entry per run and per policy event
        stored = {t: _rows(tx, t, k) for t, k in (("runs", "run_id"), ("calls", "call_id"),
                                                   ("policy_events", "event_id"))}
    if "://" in ledger_location:
        return  # row equality against the one-by-one path is checked on DuckDB (a second ledger file)
    # The same runs written one transaction per run hold identical rows.
    copies = [_varied_run(i, when) for i in range(12)]
    for original, copy in zip(runs, copies, strict=True):
        copy.run_id = original.run_id
        for call, orig_call in zip(copy.calls, original.calls, strict=True):
            call.call_id, call.run_id = orig_call.call_id, original.run_id
        for event, orig_event in zip(copy.policy_events, original.policy_events, strict=True):
            event.event_id = orig_event.event_id
    single = open_ledger(ledger_location + "-single.duckdb")
    for copy in copies:
        with single.write() as tx:
            assert insert_run(tx, copy)
    with single.read() as tx:
        assert {t: _rows(tx, t, k) for t, k in (("runs", "run_id"), ("calls", "call_id"),
                                                 ("policy_events", "event_id"))} == stored


def test_grouped_insert_is_idempotent_and_rekeys_like_one_by_one(ledger_location):
    ledger = open_ledger(ledger_location)
    when = at("2025-03-05")
    first = _varied_run(1, when)  # a batch line (batch_line set)
    with ledger.write() as tx:
        assert insert_run(tx, first)
    replay = _varied_run(1, when)
    replay.run_id, replay.started_at = first.run_id, first.started_at
    other_execution = _varied_run(1, when + timedelta(minutes=5))  # same line id, another start: re-keyed
    other_execution.run_id = first.run_id
    fresh = _varied_run(2, when)
    same_in_group = RunRecord(run_id=fresh.run_id, pipeline_name="rag", pipeline_hash="x", started_at=fresh.started_at)
    with ledger.write() as tx:
        flags = insert_runs(tx, [replay, other_execution, fresh, same_in_group])
    assert flags == [False, True, True, False]
    assert other_execution.run_id == rekeyed_run_id(first.run_id, other_execution.started_at)
    assert all(c.run_id == other_execution.run_id for c in other_execution.calls)
    with ledger.write() as tx:  # the re-keyed run replayed: recognised
        again = _varied_run(1, when + timedelta(minutes=5))
        again.run_id = first.run_id
        assert insert_runs(tx, [again]) == [False]
    with ledger.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM runs") == 3
        assert tx.scalar("SELECT COUNT(*) FROM audit_log WHERE kind = 'run'") == 3
        assert audit.verify(tx)[1] == []


def test_grouped_insert_releases_reservations(ledger_location):
    ledger = open_ledger(ledger_location)
    when = datetime.now(timezone.utc)
    runs = [_varied_run(i, when) for i in range(3)]
    with ledger.write() as tx:
        for run in runs[:2]:
            rid = reservations.insert(tx, run.run_id, ["global"], Decimal("0.5"), created_at=when, now=when,
                                      ttl_minutes=10)
            run.policy = PolicyDecision(result="ALLOWED", reserved_cost=Decimal("0.5"), reservation_id=rid)
    with ledger.write() as tx:
        insert_runs(tx, runs)
    with ledger.read() as tx:
        released = tx.query("SELECT run_id, released_at, actual_cost FROM reservations ORDER BY run_id")
        assert audit.verify(tx)[1] == []
    expected = sorted((r.run_id, r.ended_at.replace(tzinfo=None), r.total_cost) for r in runs[:2])
    assert [(a, b, Decimal(c)) for a, b, c in released] == expected


def test_group_spool_file_is_removed_only_after_all_its_runs(tmp_path):
    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    spool = Spool(tmp_path / "spool")
    runs = [_varied_run(i, at("2025-03-06")) for i in range(5)]
    path = spool.write_many(runs)
    assert len(spool) == 5 and spool.pending() == [path]
    assert sorted(spool.pending_run_ids()) == sorted(r.run_id for r in runs)
    done = drain(ledger, spool, grouped=True)
    assert done.ok and sorted(done.inserted) == sorted(r.run_id for r in runs) and spool.pending() == []
    # A crash after the commit but before the removal: the file is ingested again as duplicates, exactly once.
    path = spool.write_many(runs)
    again = ingest(ledger, list(spool.items()), spool)  # one transaction per run handles group files too
    assert again.inserted == [] and len(again.duplicates) == 5 and not path.exists()


def test_alerts_hook_reads_budgets_once_per_group(ledger_location):
    """The after-insert alerts hook evaluates each run of a group; the budgets table is read once (tx.memo)."""
    from genops_cli.config import load_settings
    from genops_cli.policy.budgets import set_budget
    from genops_cli.startup import install_hooks

    install_hooks(load_settings())
    ledger = open_ledger(ledger_location)
    set_budget(ledger, load_settings(), "team:ml", daily=Decimal("0.0001"))
    now = datetime.now(timezone.utc)
    runs = [make_run(None, now, [{"model": "gpt-4o-mini", "input": 1000, "output": 100}], team="ml")
            for _ in range(3)]
    with ledger.write() as tx:
        insert_runs(tx, runs)
        assert "ledger_budgets" in tx.memo
    with ledger.read() as tx:
        fired = tx.query("SELECT threshold, run_id FROM alerts ORDER BY threshold")
        assert audit.verify(tx)[1] == []
    assert [t for t, _ in fired] == [50, 80, 95, 100] and {r for _, r in fired} == {runs[0].run_id}


def test_payload_columns_follow_the_schema():
    """`audit.inserted_payload` predicts stored rows from the schema: every column of runs and calls is written."""
    assert set(column_types("runs")) == set(RUN_COLUMNS)
    assert set(column_types("calls")) == set(CALL_COLUMNS)
    assert audit.stored_form("runs", {"total_cost": Decimal("-0E-12"), "batch_line": 3.0, "simulated": 0,
                                      "started_at": datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}
                             ) == {"total_cost": Decimal("0E-10"), "batch_line": 3, "simulated": False,
                                   "started_at": datetime(2025, 1, 1, 0, 0)}


def test_inserted_payload_equals_the_stored_form_normalized_and_its_digest_the_canonical_one():
    """Bulk ingestion's one-pass payload (coercion and normalization per column, digest from the rows' canonical
    texts) gives the rows and the digest of the plain definition: stored form, `_norm_row`, sorted, dumped whole."""
    rows = {
        "runs": [{"run_id": "r1", "total_cost": Decimal("-0E-12"), "saved_cost": Decimal("0.00012345678912"),
                  "batch_line": 3.0, "simulated": 0, "error": None, "tags": '{"a": "\u00e9"}',
                  "started_at": datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}],
        "calls": [{"call_id": f"c{i}", "run_id": "r1", "latency_ms": 1 / 3 + i, "cost": Decimal(i) / 7,
                   "input_tokens": 10 - i, "priced": i % 2, "model": None if i == 2 else "gpt-4o-mini",
                   "started_at": datetime(2025, 1, 1, 0, 0, i, 123456)} for i in range(5)],
    }
    payload = audit.inserted_payload("run", rows)
    plain: list[dict[str, Any]] = []
    for table in ("runs", "calls"):
        plain.extend(sorted((audit._norm_row(table, audit.stored_form(table, r)) for r in rows[table]),
                            key=audit._canonical))
    assert list(payload) == plain
    assert audit.payload_digest(payload) == audit.payload_digest(plain)  # the second dumps the list whole


@pytest.mark.parametrize("mode", ["inline", "process"])
def test_recorder_hands_runs_to_the_spool_then_ingests_them_all(mode):
    """The recorder: submit() leaves one spool file per run (no ledger work on the caller's thread); flush()
    ingests them (inline: in this process; process: in the ingester process) and removes the files."""
    from genops_cli.ledger.recorder import Recorder

    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    recorder = Recorder(ledger, mode)
    runs = [_varied_run(i, at("2025-03-07")) for i in range(6)]
    for run in runs:
        recorder.submit(run)
    if mode == "inline":  # nothing reached the ledger yet: the caller only wrote spool files
        assert sorted(Spool(ledger.spool_dir()).pending_run_ids()) == sorted(r.run_id for r in runs)
    result = recorder.flush(30)
    recorder.close()
    assert result.ok and sorted(result.inserted) == sorted(r.run_id for r in runs)
    assert Spool(ledger.spool_dir()).pending() == []
    with ledger.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM runs") == 6
        assert audit.verify(tx)[1] == []


def test_recorder_ingester_process_takes_leftover_group_files():
    """A process died after spooling a group file: the next recorder's ingester ingests it with its own runs."""
    from genops_cli.ledger.recorder import Recorder

    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    leftover = [_varied_run(i, at("2025-03-08")) for i in range(3)]
    Spool(ledger.spool_dir()).write_many(leftover)
    recorder = Recorder(ledger, "process")
    recorder.submit(_varied_run(9, at("2025-03-08")))
    assert recorder.flush(30).ok
    recorder.close()
    assert Spool(ledger.spool_dir()).pending() == []
    with ledger.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM runs") == 4


def test_budget_list_is_cached_per_ledger_and_own_changes_apply_at_once():
    """`has_budgets` reads the ledger's budgets from a per-process copy; this process's own `budget set`/`remove`
    invalidate it; a budget written straight into the table (not through `set_budget`, so without touching the
    ledger's budget stamp) is seen once the copy is older than `max_age`."""
    from genops_cli.config import load_settings
    from genops_cli.policy import budgets

    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    settings = load_settings()
    budgets.forget_ledger_budgets()
    assert budgets.cached_ledger_budgets(ledger) == []
    budgets.set_budget(ledger, settings, "team:ml", daily=Decimal("1"))
    assert [b.scope for b in budgets.cached_ledger_budgets(ledger)] == ["team:ml"]  # own set: at once
    with ledger.write() as tx:  # as another process would: straight into the table
        tx.execute("INSERT INTO budgets (scope, daily_limit, created_at, updated_at) VALUES (?, ?, ?, ?)",
                   ["team:ops", Decimal("2"), datetime(2025, 1, 1), datetime(2025, 1, 1)])
    assert [b.scope for b in budgets.cached_ledger_budgets(ledger)] == ["team:ml"]  # within the TTL
    assert [b.scope for b in budgets.cached_ledger_budgets(ledger, max_age=0)] == ["team:ml", "team:ops"]
    assert budgets.remove_budget(ledger, settings, "team:ml")
    assert [b.scope for b in budgets.cached_ledger_budgets(ledger)] == ["team:ops"]  # own remove: at once


def test_api_profiles_a_live_pipeline_once():
    """Haystack Pipelines are unhashable (they define __eq__): the adapter's profile cache is keyed by identity,
    so auto-instrumented runs do not re-profile the pipeline every time."""
    from haystack import Pipeline
    from haystack.components.builders import PromptBuilder

    from genops_cli import GenOpsHaystackAdapter

    pipeline = Pipeline()
    pipeline.add_component("prompt", PromptBuilder(template="hi {{ name }}", required_variables=["name"]))
    adapter = GenOpsHaystackAdapter(team="ml")
    first = adapter._profile(pipeline, None)
    assert adapter._profile(pipeline, None) is first
    pipeline.add_component("other", PromptBuilder(template="x"))  # the pipeline changed: profiled again
    assert adapter._profile(pipeline, None) is not first
