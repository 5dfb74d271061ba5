"""Shared fixtures: an isolated ledger and config per test, loopback fake providers, CLI helpers.

No test touches the internet: provider calls go to loopback servers that speak the real OpenAI and Anthropic
APIs, reached by unmodified pipelines through OPENAI_BASE_URL / ANTHROPIC_BASE_URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_pipelines"

for _var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GENOPS_LEDGER",
             "GENOPS_CONFIG", "GENOPS_TEAM", "GENOPS_PROJECT", "GENOPS_ENVIRONMENT", "GENOPS_DAILY_BUDGET_LIMIT",
             "GENOPS_MONTHLY_BUDGET_LIMIT", "GENOPS_GOVERNANCE_POLICY", "GENOPS_WEBHOOK_URL", "GENOPS_SPOOL_DIR",
             "HAYSTACK_CONTENT_TRACING_ENABLED"):
    os.environ.pop(_var, None)
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"
# hypothesis keeps caches in ./.hypothesis by default: keep them out of the repository's top level
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "genops-hypothesis"))
os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets its own ledger, cwd (no stray .genops.yml), price-book cache and environment (code under
    test, like the guide's examples, may set os.environ directly: restored after each test)."""
    saved = dict(os.environ)
    ledger = tmp_path / "ledger.duckdb"
    monkeypatch.setenv("GENOPS_LEDGER", str(ledger))
    monkeypatch.chdir(tmp_path)
    from genops_cli.pricing import reset_price_book

    reset_price_book()
    yield ledger
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture
def ledger_path(isolated: Path) -> Path:
    return isolated


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fakeproviders import FakeOpenAI

    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def anthropic_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fakeproviders import FakeAnthropic

    with FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def cli(*args: str, input: str | None = None) -> Any:
    """Run the genops CLI in-process through typer's CliRunner (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from genops_cli.cli.app import app

    runner = CliRunner()
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def genops_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
                      input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `genops` as a real process (the console script of this environment)."""
    exe = Path(sys.executable).with_name("genops")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          input=input)


def sample(name: str, file: str = "pipeline.yml") -> str:
    return str(SAMPLES / name / file)


def ledger_rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from genops_cli.ledger.store import open_ledger

    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        return tx.query(sql, params or [])


PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")


@pytest.fixture(params=["duckdb", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The test's ledger on each backend: the default DuckDB file, or a fresh schema on GENOPS_TEST_POSTGRES_URL
    (skipped when it is unset), dropped afterwards."""
    if request.param == "duckdb":
        yield "duckdb"
        return
    if not PG_URL:
        pytest.skip("GENOPS_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    import uuid

    import psycopg

    schema = f"genops_test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in PG_URL else "?"
    monkeypatch.setenv("GENOPS_LEDGER", f"{PG_URL}{separator}schema={schema}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the per-URL spool stays in the test's directory
    yield "postgresql"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def ledger_lock_held(ledger: str, mode: str = "exclusive") -> Iterator[None]:
    """Another process holds the lock file of the DuckDB ledger `ledger` while the block runs: `shared` as a long
    read (`genops serve`, a big report) holds it, `exclusive` as a writer does."""
    lock = f"{ledger}.lock"
    flag = "LOCK_SH" if mode == "shared" else "LOCK_EX"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, time\n"
        f"f = open({lock!r}, 'a+b'); fcntl.flock(f, fcntl.{flag}); print('held', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
