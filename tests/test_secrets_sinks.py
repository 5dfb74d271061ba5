"""Secrets by value, one test per sink: the pipeline's key lives in a variable with a non-standard name
(LLM_CRED, no `sk-` prefix) and the loopback provider echoes it in its 401 error, plain, base64 (as in a Basic
header) and URL-encoded. None of these forms may reach the ledger (runs.error, calls.error), the spool, stdout,
stderr, logs, exports, reports, OTel spans or webhook bodies.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import cli, json_lines, ledger_lock_held, ledger_rows, sample

KEY = "cred-Zq7Xv9Lm2Kp4Wn8R"  # no provider prefix: only its value identifies it


def leaked_forms(key: str) -> list[str]:
    """The key and the parts of its encodings that depend on it alone (an echo is masked if none appears)."""
    basic = base64.b64encode(f"apikey:{key}".encode()).decode()
    return [key, basic[10:-4], quote(key + "/", safe=""), base64.b64encode(key.encode()).decode()[:-4]]


def assert_clean(text: str, where: str) -> None:
    for form in leaked_forms(KEY):
        assert form not in text, f"secret ({form!r}) leaked into {where}"


@pytest.fixture
def echoing_provider(openai_server, monkeypatch, tmp_path):
    """The chain sample with its key read from LLM_CRED; the provider answers 401 echoing the key."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("LLM_CRED", KEY)
    openai_server.failures = [{"status": 401, "echo_key": "all"} for _ in range(5)]
    pipeline = tmp_path / "chain.yml"
    pipeline.write_text(Path(sample("chain")).read_text(encoding="utf-8").replace("- OPENAI_API_KEY", "- LLM_CRED"),
                        encoding="utf-8")
    return str(pipeline)


def _run(pipeline: str, *extra: str):
    return cli("run", pipeline, "--inputs", sample("chain", "inputs.json"), "--customer", "acme", *extra)


def test_stdout_json_and_stderr(echoing_provider):
    result = _run(echoing_provider, "--json")
    assert result.exit_code == 1
    [out] = json_lines(result.stdout)
    assert "Incorrect API key provided" in out["error"]  # the echo happened and the message is kept
    assert_clean(result.stdout, "stdout (--json)")
    assert_clean(result.stderr, "stderr")
    human = _run(echoing_provider)
    assert_clean(human.stdout + human.stderr, "human output")


def test_ledger_runs_and_calls_errors(echoing_provider):
    _run(echoing_provider, "--json")
    rows = ledger_rows("SELECT error FROM runs") + ledger_rows("SELECT error FROM calls WHERE error IS NOT NULL")
    assert any("Incorrect API key provided" in (r[0] or "") for r in rows)
    assert_clean(repr(rows), "the ledger")
    assert_clean(repr(ledger_rows("SELECT * FROM audit_log")), "the audit log")


def test_spool_files(echoing_provider, isolated, monkeypatch):
    """Another process holds the ledger lock: the run cannot be ingested and stays in the spool (exit 4)."""
    assert cli("ledger", "info").exit_code in (0, 2)
    with ledger_lock_held(str(isolated)):
        monkeypatch.setenv("GENOPS_LOCK_TIMEOUT", "0.5")
        result = _run(echoing_provider, "--json")
    assert result.exit_code == 4, result.stderr
    spool = Path(str(isolated) + ".spool")
    files = [p for p in spool.iterdir() if p.is_file() and not p.name.endswith((".lock", ".offset"))]
    assert files
    for path in files:
        assert_clean(path.read_text(encoding="utf-8", errors="replace"), f"spool file {path.name}")
    assert_clean(result.stdout + result.stderr, "output of a spooled run")


def test_logs_at_debug_in_json_format(echoing_provider, monkeypatch):
    monkeypatch.setenv("GENOPS_LOG_LEVEL", "DEBUG")
    result = _run(echoing_provider, "--log-format", "json")
    assert result.stderr
    assert_clean(result.stderr, "debug logs")


def test_exports_and_reports(echoing_provider, tmp_path):
    _run(echoing_provider, "--json")
    for table in ("runs", "calls"):
        for fmt in ("csv", "jsonl"):
            out = tmp_path / f"{table}.{fmt}"
            result = cli("ledger", "export", "--table", table, "--format", fmt, "--out", str(out))
            assert result.exit_code == 0, result.stderr
            assert_clean(out.read_text(encoding="utf-8"), f"ledger export {table} {fmt}")
    [run_id] = [r[0] for r in ledger_rows("SELECT run_id FROM runs")]
    shown = cli("runs", "show", run_id, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert "Incorrect API key provided" in shown.stdout
    assert_clean(shown.stdout, "runs show")
    listed = cli("runs", "--format", "csv")
    assert_clean(listed.stdout, "runs list csv")
    for fmt in ("json", "md", "html"):
        report = cli("compliance", "report", "--format", fmt)
        assert report.exit_code == 0, report.stderr
        assert_clean(report.stdout, f"compliance report {fmt}")


def test_otel_spans(echoing_provider):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from genops_cli.ledger.hooks import REGISTRY
    from genops_cli.otel import OtelRunExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    exporter = OtelRunExporter(provider, None, name="otel:test-secrets")
    REGISTRY.register(exporter)
    try:
        _run(echoing_provider, "--json")
    finally:
        REGISTRY.unregister(exporter.name)
    finished = spans.get_finished_spans()
    assert finished
    dumped = "\n".join(s.to_json() for s in finished)
    assert "Incorrect API key provided" in dumped
    assert_clean(dumped, "OTel spans")


def test_webhook_bodies(monkeypatch):
    """Alert payloads carry user strings (scopes, tenants, messages): a key among them is masked on the wire."""
    from genops_cli.policy.alerts import post_webhook
    from genops_cli.redact import register_env_vars

    monkeypatch.setenv("LLM_CRED", KEY)
    register_env_vars(["LLM_CRED"])
    from webhook_sink import WebhookSink

    with WebhookSink("/hook", status=200) as sink:
        status = post_webhook(sink.url, {"text": f"run failed: 401 {KEY}",
                                         "blocks": [{"text": quote(KEY, safe='')}]}, 3)
    bodies = sink.raw
    assert status == "http 200"
    [body] = bodies
    assert "run failed" in body.decode()
    assert_clean(body.decode(), "webhook body")


def test_variable_named_in_config_is_masked_in_rows_recorded_before(tmp_path, monkeypatch):
    """`redact: {env_vars: [...]}` in .genops.yml: the value is masked even in rows written before genops knew
    it was a secret (exports and `runs show` mask on the way out)."""
    from genops_cli.ledger.store import open_ledger

    value = "vendor-4f9a8b7c6d5e"
    monkeypatch.setenv("MY_VENDOR_THING", value)
    (tmp_path / ".genops.yml").write_text("redact:\n  env_vars: [MY_VENDOR_THING]\n", encoding="utf-8")
    cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    with open_ledger(str(tmp_path / "ledger.duckdb")).write() as tx:
        tx.execute("UPDATE runs SET error = ?", [f"upstream said: bad credential {value}"])
    out = tmp_path / "runs.jsonl"
    assert cli("ledger", "export", "--table", "runs", "--format", "jsonl", "--out", str(out)).exit_code == 0
    exported = out.read_text(encoding="utf-8")
    assert "upstream said: bad credential" in exported and value not in exported
    [run_id] = [r[0] for r in ledger_rows("SELECT run_id FROM runs")]
    shown = cli("runs", "show", run_id, "--json")
    assert "bad credential" in shown.stdout and value not in shown.stdout


@pytest.mark.parametrize("text", [
    "Incorrect API key provided: sk-proj-AbCdEfGh12345678",
    "x-api-key: sk-ant-api03-AbCdEfGh12345678",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    "Authorization: Basic dXNlcjpwYXNzd29yZDEyMzQ=",
    "aws key AKIAABCDEFGHIJKLMNOP rejected",
    "google key AIzaSyA-abcdefghijklmnopqrstuvwxyz12345 invalid",
    "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 revoked",
    "azure api-key: 0123456789abcdef0123456789abcdef failed",
    'request had {"api_key": "q8w7e6r5t4y3u2i1"}',
    "https://x.example/v1?api_key=q8w7e6r5t4y3u2i1&x=1",
])
def test_known_key_shapes_are_masked_without_registration(text):
    from genops_cli.redact import redact

    masked = redact(text)
    assert "***" in masked
    secret = text.split()[-1] if text.startswith(("aws", "google", "token")) else None
    for part in ("AbCdEfGh12345678", "eyJhbGciOiJIUzI1NiJ9", "dXNlcjpwYXNzd29yZDEyMzQ", "AKIAABCDEFGHIJKLMNOP",
                 "AIzaSyA-abcdefghijklmnop", "ghp_abcdefghij", "0123456789abcdef0123", "q8w7e6r5t4y3u2i1"):
        assert part not in masked, (text, masked, secret)


def test_registered_value_is_masked_in_any_base64_alignment(monkeypatch):
    from genops_cli.redact import redact, register_value

    register_value(KEY)
    for prefix in ("", "a", "ab", "user:", "x" * 7):
        encoded = base64.b64encode(f"{prefix}{KEY}-suffix".encode()).decode()
        # the characters that encode the key's bytes only (the edges mix in neighbouring bytes)
        start, end = -(-len(prefix) * 4 // 3) + 1, (len(prefix) + len(KEY)) * 8 // 6 - 1
        for variant in (encoded, encoded.replace("+", "-").replace("/", "_")):
            masked = redact(f"header {variant}")
            assert "***" in masked
            for i in range(start, end - 8):
                assert variant[i:i + 8] not in masked, (prefix, variant, masked)
    assert redact(json.dumps({"k": KEY})) == '{"k": "***"}'


def test_webhook_url_token_from_config_is_masked(tmp_path):
    """A Slack/Teams webhook URL carries its credential in the path: configured in .genops.yml, it is masked in
    every output (here `config show`, table and JSON)."""
    token = "T0AAA/B0BBB/XyZsecretToken42"
    (tmp_path / ".genops.yml").write_text(f"alerts:\n  webhook_url: https://hooks.slack.com/services/{token}\n",
                                          encoding="utf-8")
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "hooks.slack.com" in result.stdout
        assert "XyZsecretToken42" not in result.stdout + result.stderr


def test_any_variable_name_holding_the_key(openai_server, monkeypatch, tmp_path):
    """Property: whatever the variable is called and whatever the key looks like, the echoed key reaches neither
    stdout nor the ledger (hypothesis picks names and keys; each example is a real run against the fake)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    template = Path(sample("chain")).read_text(encoding="utf-8")

    @settings(max_examples=8, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(name=st.from_regex(r"\A[A-Z][A-Z0-9_]{2,24}\Z").filter(lambda n: not n.startswith(("GENOPS", "OPENAI"))),
           key=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._~-]{11,40}\Z"))
    def check(name: str, key: str) -> None:
        monkeypatch.setenv(name, key)
        openai_server.failures = [{"status": 401, "echo_key": "all"} for _ in range(3)]
        pipeline = tmp_path / f"{name}.yml"
        pipeline.write_text(template.replace("- OPENAI_API_KEY", f"- {name}"), encoding="utf-8")
        result = _run(str(pipeline), "--json")
        assert result.exit_code == 1, result.stderr
        stored = repr(ledger_rows("SELECT error FROM runs") + ledger_rows("SELECT error FROM calls"))
        basic = base64.b64encode(f"apikey:{key}".encode()).decode()
        for text in (result.stdout, result.stderr, stored):
            assert key not in text and quote(key + "/", safe="") not in text and basic[12:-4] not in text
        monkeypatch.delenv(name)

    check()


def test_third_party_log_records_are_masked_whatever_prints_them(monkeypatch, caplog):
    """A library logging through its own logger (a stand-in for httpx/openai) is printed by handlers genops does
    not own (the root's, logging's last resort, here pytest's capture): the record itself is masked when made."""
    import logging

    from genops_cli.logging_setup import configure_logging
    from genops_cli.redact import register_env_vars

    monkeypatch.setenv("LLM_CRED", KEY)
    register_env_vars(["LLM_CRED"])
    configure_logging("WARNING")
    with caplog.at_level(logging.WARNING, logger="some.http.client"):
        logging.getLogger("some.http.client").warning("POST failed: 401 for key %s (%s)", KEY,
                                                      base64.b64encode(f"apikey:{KEY}".encode()).decode())
    [record] = [r for r in caplog.records if r.name == "some.http.client"]
    assert record.getMessage().startswith("POST failed: 401 for key ***")
    assert_clean(caplog.text + record.getMessage(), "a third-party log record")


def test_registered_values_never_survive_any_encoding_property():
    """Property (300 examples): a registered secret, embedded in arbitrary text plainly, base64 (standard or
    URL-safe, any prefix), URL-encoded or JSON-escaped, leaves no recoverable copy after redaction."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from genops_cli.redact import redact, register_value

    encoders = {
        "plain": lambda p, s: p + s,
        "base64": lambda p, s: base64.b64encode((p + s + "!").encode()).decode(),
        "urlsafe": lambda p, s: base64.urlsafe_b64encode((p + s + "?").encode()).decode(),
        "url": lambda p, s: quote(p + s, safe=""),
        "json": lambda p, s: json.dumps(p + s)[1:-1],
    }

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(secret=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=10, max_size=40),
           prefix=st.text(max_size=12), around=st.text(max_size=20), how=st.sampled_from(sorted(encoders)))
    def check(secret: str, prefix: str, around: str, how: str) -> None:
        register_value(secret)
        encoded = encoders[how](prefix, secret)
        masked = redact(f"{around} {encoded} {around}")
        if how in ("plain", "url", "json"):
            assert secret not in masked and quote(secret, safe="") not in masked
        else:
            decoded_prefix = len((prefix).encode())
            full = encoded.rstrip("=")
            start = -(-decoded_prefix * 4 // 3) + 1
            end = (decoded_prefix + len(secret.encode())) * 8 // 6 - 1
            for i in range(start, end - 8):
                assert full[i:i + 8] not in masked, (secret, prefix, how, masked)

    from genops_cli import redact as registry

    saved = set(registry._explicit_values)
    try:
        check()
    finally:  # random "secrets" (a run of zeros...) must not mask the output of later tests in this process
        registry._explicit_values.clear()
        registry._explicit_values.update(saved)
