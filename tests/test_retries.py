"""--retries: transient provider errors (429, 5xx, timeouts) are retried with backoff, every attempt is recorded,
permanent errors are not retried and say what to fix."""

from __future__ import annotations

import json
import random
from decimal import Decimal

from conftest import cli, json_lines, ledger_rows, sample

from genops_cli.execution.retry import RetryPolicy, backoff_delay, classify, retry_after_seconds

MINI = Decimal("0.000021")  # gpt-4o-mini, 100 in / 10 out
FOUR_O = Decimal("0.00035")  # gpt-4o, 100 in / 10 out


def _batch(tmp_path, n=1):
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps({"draft_prompt": {"request": f"r{i}", "audience": "all"}}) + "\n"
                            for i in range(n)))
    return str(path)


def test_429_with_retry_after_is_retried_and_every_attempt_recorded(openai_server):
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    openai_server.failures = [{"status": 429, "retry_after": 0.05}, {"status": 429, "retry_after": 0.05}]
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--retries", "3", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert (out["status"], out["attempt"], out["attempts"]) == ("ok", 3, 3)
    # genops switched the SDK's own retries off: 2 refused requests + 2 successful calls, nothing hidden.
    assert openai_server.count("/chat/completions") == 4
    rows = ledger_rows("SELECT attempt, status, total_cost FROM runs ORDER BY attempt")
    assert rows == [(1, "error", Decimal(0)), (2, "error", Decimal(0)), (3, "ok", MINI + FOUR_O)]
    errors = ledger_rows("SELECT r.attempt, c.status, c.cost FROM calls c JOIN runs r ON r.run_id = c.run_id "
                         "WHERE c.component_name = 'drafter' ORDER BY r.attempt")
    assert errors == [(1, "error", Decimal(0)), (2, "error", Decimal(0)), (3, "ok", MINI)]
    assert "retrying in" in result.stderr and "429" in result.stderr


def test_failed_attempt_keeps_the_spend_before_the_failure(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    # drafter ok, reviewer 500 -> attempt 1 paid the drafter; attempt 2 pays both.
    openai_server.failures = [{"delay": 0}, {"status": 500}]
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--retries", "2", "--json")
    assert result.exit_code == 0, result.stderr
    run, summary = json_lines(result.stdout)
    assert run["attempts"] == 2
    assert Decimal(summary["total_cost"]) == MINI + (MINI + FOUR_O)
    assert summary["attempts"] == 2
    rows = ledger_rows("SELECT attempt, status, total_cost, batch_line FROM runs ORDER BY attempt")
    assert rows == [(1, "error", MINI, 1), (2, "ok", MINI + FOUR_O, 1)]


def test_batch_attempt_ids_derive_from_the_line_id(openai_server, tmp_path):
    from genops_cli.execution.batch import attempt_run_id

    openai_server.failures = [{"status": 503}]
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--retries", "1", "--json")
    assert result.exit_code == 0, result.stderr
    ids = [r for (r,) in ledger_rows("SELECT run_id FROM runs ORDER BY attempt")]
    assert ids[1] == attempt_run_id(ids[0], 2)
    assert json_lines(result.stdout)[0]["run_id"] == ids[1]


def test_timeout_is_retried(openai_server, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_TIMEOUT", "0.3")
    openai_server.failures = [{"delay": 1.5}]
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--retries", "1", "--json")
    assert result.exit_code == 0, result.stderr
    assert json_lines(result.stdout)[0]["attempts"] == 2
    [(error,)] = ledger_rows("SELECT error FROM runs WHERE attempt = 1")
    assert "Timeout" in error


def test_retries_exhausted_exit_1_with_all_attempts_recorded(openai_server, tmp_path):
    openai_server.failures = [{"status": 503}] * 3
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--retries", "2", "--json")
    assert result.exit_code == 1
    run, summary = json_lines(result.stdout)
    assert (run["status"], run["attempts"], summary["failed"], summary["attempts"]) == ("error", 3, 1, 3)
    assert ledger_rows("SELECT COUNT(*) FROM runs WHERE status = 'error'") == [(3,)]
    assert openai_server.count("/chat/completions") == 3


def test_401_is_not_retried_and_names_the_key(openai_server, tmp_path):
    openai_server.failures = [{"status": 401, "message": "Incorrect API key provided"}]
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--retries", "3", "--json")
    assert result.exit_code == 1
    run = json_lines(result.stdout)[0]
    assert run["attempts"] == 1
    assert "check OPENAI_API_KEY" in run["error"]
    assert openai_server.count("/chat/completions") == 1


def test_404_says_check_the_model_name(openai_server, tmp_path):
    openai_server.failures = [{"status": 404, "message": "The model does not exist"}]
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--retries", "3", "--json")
    assert result.exit_code == 1
    run = json_lines(result.stdout)[0]
    assert run["attempts"] == 1
    assert "check the model name 'gpt-4o-mini'" in run["error"]


def test_without_retries_the_sdk_default_is_left_alone(openai_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "1")
    openai_server.failures = [{"status": 429, "retry_after": 0.01}]
    result = cli("run", sample("chain"), "--inputs", _batch(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json_lines(result.stdout)[0]["attempts"] == 1  # the SDK retried inside the one genops attempt
    assert openai_server.count("/chat/completions") == 3


# -- classification and backoff, on exception objects shaped like the SDKs' ------------------------------------


class _Headers(dict):
    def get(self, key, default=None):
        return super().get(key.lower(), default)


class _Response:
    def __init__(self, status, headers=None):
        self.status_code = status
        self.headers = _Headers(headers or {})


class RateLimitError(Exception):
    def __init__(self, headers):
        super().__init__("rate limited")
        self.status_code = 429
        self.response = _Response(429, headers)


class APITimeoutError(Exception):
    pass


class PipelineRuntimeError(Exception):
    component_name = "llm"


def _wrapped(inner):
    try:
        try:
            raise inner
        except Exception as exc:
            raise PipelineRuntimeError("component llm failed") from exc
    except PipelineRuntimeError as outer:
        return outer


def test_classify_walks_the_cause_chain_and_reads_retry_after():
    info = classify(_wrapped(RateLimitError({"retry-after-ms": "1500"})))
    assert (info.transient, info.kind, info.status, info.retry_after) == (True, "rate_limit", 429, 1.5)
    assert classify(_wrapped(APITimeoutError())).kind == "timeout"
    assert classify(_wrapped(ConnectionResetError())).transient
    assert not classify(_wrapped(ValueError("bad template"))).transient


def test_retry_after_as_http_date():
    err = RateLimitError({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(err) == 0.0  # in the past: no wait


def test_backoff_is_capped_jittered_and_honours_retry_after():
    policy = RetryPolicy(retries=5, base_delay=0.5, max_delay=4.0)
    rng = random.Random(7)
    for attempt in range(1, 8):
        delays = [backoff_delay(attempt, None, policy, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= min(4.0, 0.5 * 2 ** (attempt - 1))
    assert len({round(backoff_delay(3, None, policy, rng), 6) for _ in range(20)}) > 1
    assert all(2.0 <= backoff_delay(1, 2.0, policy, rng) <= 2.2 for _ in range(50))
    assert backoff_delay(1, 10_000, policy, rng) <= policy.max_retry_after * 1.1
