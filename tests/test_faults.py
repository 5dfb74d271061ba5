"""Fault suite: kill -9 at each write stage, a full disk, a held ledger lock, PostgreSQL going away mid-batch.

Each fault is checked through the CLI the way an operator sees it: after the fault, the next ordinary command
(`genops run --resume` of the same batch, or `genops ledger drain`) leaves every batch line in the ledger exactly
once, with nothing left in the spool: zero lost runs, zero duplicated runs.

Where the kill happens is chosen from outside, without touching genops' code: the process runs under a profile
hook that sends itself SIGKILL at the Nth occurrence of a write stage (a spool append, rename or unlink; rows
inserted but not committed; committed but not cleaned up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import cli, ledger_rows, sample

CHAIN = sample("chain")
LINES = 4

# Runs genops under a profile hook that SIGKILLs the process at the Nth occurrence of a write stage: a system call
# of the spool/offset files (os.write, os.replace, os.unlink, matched by identity) or the entry/exit of a recorder
# step ("insert_runs:return" = rows inserted, transaction not committed; "after_commit:call" = committed, hooks
# and spool clean-up not done yet).
KILLER = """
import os, signal, sys, threading
stage, nth = sys.argv[1], int(sys.argv[2])
calls = {"write": os.write, "replace": os.replace, "unlink": os.unlink, "fsync": os.fsync}
name, _, when = stage.partition(":")
seen = [0]
lock = threading.Lock()
def fire():
    with lock:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
def hook(frame, event, arg):
    if stage in calls:
        if event == "c_call" and arg is calls[stage]:
            fire()
    elif event == when and frame.f_code.co_name == name and "genops_cli" in frame.f_code.co_filename:
        fire()
sys.setprofile(hook)
threading.setprofile(hook)
from genops_cli.cli.app import main
sys.argv = ["genops", *sys.argv[3:]]
main()
"""


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    lines = Path(sample("chain", "batch.jsonl")).read_text(encoding="utf-8").splitlines()
    while len(lines) < LINES:
        lines += lines
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines[:LINES]) + "\n", encoding="utf-8")
    return path


def _run_batch(batch: Path, *extra: str, env: dict[str, str] | None = None,
               preexec: object = None, killer: tuple[str, int] | None = None) -> subprocess.CompletedProcess[str]:
    args = ["run", CHAIN, "--inputs", str(batch), "--simulate", "--resume", "--quiet", *extra]
    if killer:
        command = [sys.executable, "-c", KILLER, killer[0], str(killer[1]), *args]
    else:
        command = [str(Path(sys.executable).with_name("genops")), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})},
                          preexec_fn=preexec)  # type: ignore[arg-type]


def _pending(directory: Path | None = None) -> int:
    """Runs waiting in the spool, whatever the spool's file format (read through its public interface)."""
    from genops_cli.ledger.spool import Spool

    return len(Spool(directory or Path(os.environ["GENOPS_LEDGER"] + ".spool")))


def _history() -> None:
    """One earlier single run (not a batch line), so a fault hits a ledger that already has data."""
    result = cli("run", CHAIN, "--inputs", sample("chain", "inputs.json"), "--simulate", "--quiet")
    assert result.exit_code == 0, result.stderr


def _assert_exactly_once(lines: int = LINES) -> None:
    rows = ledger_rows("SELECT batch_line, status, COUNT(*) FROM runs WHERE batch_line IS NOT NULL "
                       "GROUP BY batch_line, status ORDER BY batch_line")
    assert [(line, status) for line, status, _n in rows] == [(i, "ok") for i in range(1, lines + 1)], rows
    assert all(n == 1 for _line, _status, n in rows), f"duplicated runs: {rows}"
    calls = ledger_rows("SELECT run_id, seq, COUNT(*) FROM calls GROUP BY run_id, seq HAVING COUNT(*) > 1")
    assert calls == [], f"duplicated calls: {calls}"
    assert _pending() == 0, "runs left in the spool"


STAGES = [("write", 1), ("write", 3), ("hand_off:return", 2), ("insert_runs:call", 1), ("insert_runs:return", 1),
          ("insert_runs:return", 2), ("after_commit:call", 1), ("after_commit:call", 3), ("replace", 1),
          ("replace", 2), ("unlink", 1), ("unlink", 2)]


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "nth"), STAGES, ids=[f"{s}#{n}" for s, n in STAGES])
def test_kill_9_at_a_write_stage_loses_and_duplicates_nothing(batch, stage, nth):
    _history()  # the killed batch writes into an existing, migrated ledger
    killed = _run_batch(batch, killer=(stage, nth))
    # the stage must have happened (a renamed recorder step fails here, loudly, instead of passing unkilled)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = _run_batch(batch)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    _assert_exactly_once()


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "nth"), [("write", 2), ("insert_runs:call", 1), ("after_commit:call", 1)])
def test_kill_9_of_a_fresh_batch_then_resume(batch, stage, nth):
    """The first invocation on a new ledger is killed (migrations, first spool files): --resume completes it."""
    killed = _run_batch(batch, killer=(stage, nth))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = _run_batch(batch)
    assert again.returncode == 0, again.stderr
    _assert_exactly_once()


def _limit_file_size(limit: int):
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
@pytest.mark.parametrize("limit", [2_000, 20_000, 200_000, 2_000_000])
def test_full_disk_loses_and_duplicates_nothing(batch, limit):
    """Files cannot grow past `limit` bytes (RLIMIT_FSIZE, as on a full disk): the batch fails cleanly (exit 4 or 1,
    one line, no traceback) or fits; once space is back, --resume leaves every line exactly once."""
    _history()
    full = _run_batch(batch, preexec=_limit_file_size(limit))
    print(f"file size limit {limit}: exit {full.returncode}")  # shown with -s: which limits made writes fail
    assert full.returncode in (0, 1, 4), full.stderr
    assert "Traceback" not in full.stderr
    if full.returncode == 4:
        assert full.stderr.count("error:") == 1
    again = _run_batch(batch)
    assert again.returncode == 0, again.stderr
    _assert_exactly_once()


def _hold_lock(path: str, exclusive: bool = True) -> subprocess.Popen[str]:
    mode = "LOCK_EX" if exclusive else "LOCK_SH"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, time\n"
        f"f = open({path!r}, 'a+b'); fcntl.flock(f, fcntl.{mode}); print('held', flush=True); time.sleep(300)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_held_lock_makes_writers_and_readers_give_up_with_exit_4(batch):
    """A stuck process holds the ledger lock: a writer exits 4 within the configured wait, naming the lock file,
    with its runs kept in the spool; a reader exits 4 the same way; once the lock is free, the next command
    ingests the spooled runs exactly once."""
    _history()
    lock = os.environ["GENOPS_LEDGER"] + ".lock"
    holder = _hold_lock(lock)
    try:
        env = {"GENOPS_LOCK_TIMEOUT": "1"}
        started = time.monotonic()
        writer = subprocess.run([str(Path(sys.executable).with_name("genops")), "run", sample("chain"), "--inputs",
                                 sample("chain", "inputs.json"), "--simulate", "--json"], capture_output=True,
                                text=True, timeout=120, env={**os.environ, **env})
        waited = time.monotonic() - started
        assert writer.returncode == 4, writer.stderr
        errors = [line for line in writer.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and lock in errors[0] and "GENOPS_LOCK_TIMEOUT" in errors[0], writer.stderr
        assert "Traceback" not in writer.stderr
        assert waited < 60  # bounded: the default would be 30 s per wait, this run asked for 1 s
        assert _pending() == 1  # the run is kept for the next command
        reader = subprocess.run([str(Path(sys.executable).with_name("genops")), "runs", "--json"],
                                capture_output=True, text=True, timeout=120, env={**os.environ, **env})
        assert reader.returncode == 4, reader.stderr
        assert lock in reader.stderr and "Traceback" not in reader.stderr
    finally:
        holder.kill()
        holder.wait()
    drained = cli("ledger", "drain")
    assert drained.exit_code == 0, drained.stderr
    rows = ledger_rows("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs")
    assert rows == [(2, 2)]


@pytest.mark.slow
def test_pile_of_cron_jobs_behind_a_stuck_lock_all_end(batch):
    """Five writers start behind a held lock: every one ends (exit 4) within its wait; none hangs; afterwards
    each of their runs is in the ledger exactly once."""
    lock = os.environ["GENOPS_LEDGER"] + ".lock"
    Path(lock).parent.mkdir(parents=True, exist_ok=True)
    holder = _hold_lock(lock)
    exe = str(Path(sys.executable).with_name("genops"))
    try:
        procs = [subprocess.Popen([exe, "run", sample("chain"), "--inputs", sample("chain", "inputs.json"),
                                   "--simulate", "--json", "--tag", f"job={i}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "GENOPS_LOCK_TIMEOUT": "1"}) for i in range(5)]
        codes = [p.wait(timeout=120) for p in procs]
        for p in procs:
            assert p.stderr is not None and "Traceback" not in p.stderr.read()
    finally:
        holder.kill()
        holder.wait()
    assert codes == [4] * 5
    assert cli("ledger", "drain").exit_code == 0
    assert ledger_rows("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs") == [(5, 5)]


PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="needs GENOPS_TEST_POSTGRES_URL")
def test_postgres_going_away_mid_batch_loses_and_duplicates_nothing(batch, tmp_path, monkeypatch):
    """Another connection terminates genops' backends (pg_terminate_backend) again and again while a batch
    records into PostgreSQL: the batch ends without a traceback (runs kept in the spool where a write failed);
    --resume then leaves every line exactly once."""
    import psycopg

    app = f"genops-fault-{uuid.uuid4().hex[:8]}"
    schema = f"fault_{uuid.uuid4().hex[:8]}"
    assert PG_URL is not None
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}application_name={app}&schema={schema}"
    monkeypatch.setenv("GENOPS_LEDGER", url)
    monkeypatch.setenv("GENOPS_SPOOL_DIR", str(tmp_path / "spool"))
    lines = Path(sample("chain", "batch.jsonl")).read_text(encoding="utf-8").splitlines()
    many = tmp_path / "many.jsonl"
    count = 24
    many.write_text("\n".join((lines * count)[:count]) + "\n", encoding="utf-8")
    # distinct lines: deterministic run ids cover line number and content
    stop = threading.Event()
    killed = [0]

    def terminator() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            while not stop.wait(0.15):
                rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE application_name = %s AND pid <> pg_backend_pid()", [app]).fetchall()
                killed[0] += len(rows)

    thread = threading.Thread(target=terminator, daemon=True)
    try:
        _history()  # creates the schema
        thread.start()
        interrupted = _run_batch(many, env={"GENOPS_LEDGER": url})
        assert interrupted.returncode in (0, 1, 4), interrupted.stderr
        assert "Traceback" not in interrupted.stderr
        stop.set()
        thread.join(10)
        again = _run_batch(many, env={"GENOPS_LEDGER": url})
        assert again.returncode == 0, again.stderr
        drained = _run_batch(many, env={"GENOPS_LEDGER": url})
        assert drained.returncode == 0
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            rows = conn.execute(f"SELECT batch_line, status, COUNT(*) FROM {schema}.runs "
                                "WHERE batch_line IS NOT NULL GROUP BY 1, 2 ORDER BY 1").fetchall()
        assert [(line, status) for line, status, _n in rows] == [(i, "ok") for i in range(1, count + 1)], rows
        assert all(n == 1 for *_rest, n in rows)
        assert _pending(tmp_path / "spool") == 0
        assert killed[0] > 0, "the terminator never hit a genops backend"
    finally:
        stop.set()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
