"""Alerts where people read them: Slack, Microsoft Teams (Adaptive Card and MessageCard) and generic JSON bodies, a
webhook per budget (`budget set --webhook URL --webhook-format FMT`), and an alert for runs left in the spool.
Every webhook is a loopback HTTP server that records the JSON it is sent."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, sample
from webhook_sink import WebhookSink

RAG = ("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")


@pytest.fixture
def receivers() -> Iterator[list[WebhookSink]]:
    made = [WebhookSink("/services/T0/B0/secret-token", status=200) for _ in range(2)]
    yield made
    for r in made:
        r.close()


@pytest.fixture
def priced(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}  # $0.00045 a run on gpt-4o-mini
    return openai_server


def test_budget_webhook_posts_slack_blocks(priced, receivers):
    hook = receivers[0]
    result = cli("budget", "set", "team:ml", "--daily", "0.0005", "--alert-at", "80", "--webhook", hook.url,
                 "--webhook-format", "slack", "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["webhook"] == {"host": "127.0.0.1", "format": "slack"}
    assert "secret-token" not in result.stdout
    assert "secret-token" not in cli("budget", "list", "--json").stdout
    table = cli("budget", "list").stdout
    assert "slack @ 127.0.0.1" in table and "secret-token" not in table

    _run_and_flush_team("ml")
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["text"].startswith("genops: team:ml daily budget at 80%")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][2]["fields"]}
    assert fields["*Spent*"] == "$0.00045" and fields["*Limit*"] == "$0.0005" and fields["*Scope*"] == "team:ml"


def _run_and_flush_team(team: str) -> None:
    from genops_cli.policy import alerts

    result = cli(*RAG, "--team", team)
    alerts.flush(10)
    assert result.exit_code == 0, result.stderr


def test_teams_adaptive_card_and_message_card(priced, receivers):
    adaptive, message_card = receivers
    assert cli("budget", "set", "team:ml", "--daily", "0.0004", "--alert-at", "100", "--webhook", adaptive.url,
               "--webhook-format", "teams").exit_code == 0
    assert cli("budget", "set", "customer:acme", "--daily", "0.0004", "--alert-at", "100", "--webhook",
               message_card.url, "--webhook-format", "teams-messagecard").exit_code == 0
    from genops_cli.policy import alerts

    result = cli(*RAG, "--team", "ml", "--customer", "acme")
    alerts.flush(10)
    assert result.exit_code == 0, result.stderr

    assert len(adaptive.bodies) == 1
    card = adaptive.bodies[0]
    assert card["type"] == "message"
    attachment = card["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content = attachment["content"]
    assert content["type"] == "AdaptiveCard" and content["version"] == "1.4"
    assert content["body"][0]["text"] == "genops: team:ml daily budget at 100%"
    assert content["body"][0]["color"] == "Attention"  # 100 % is critical
    facts = {f["title"]: f["value"] for f in content["body"][2]["facts"]}
    assert facts["Spent"] == "$0.00045" and facts["Used"] == "112.50%"

    assert len(message_card.bodies) == 1
    legacy = message_card.bodies[0]
    assert legacy["@type"] == "MessageCard" and legacy["title"] == "genops: customer:acme daily budget at 100%"
    assert {f["name"]: f["value"] for f in legacy["sections"][0]["facts"]}["Scope"] == "customer:acme"


def test_budget_webhook_wins_over_the_configured_one_which_stays_generic(priced, receivers, tmp_path: Path):
    configured, own = receivers
    (tmp_path / ".genops.yml").write_text(f"alerts:\n  webhook_url: {configured.url}\n")
    assert cli("budget", "set", "global", "--daily", "0.0005", "--alert-at", "50").exit_code == 0
    assert cli("budget", "set", "team:ml", "--daily", "0.0005", "--alert-at", "50", "--webhook", own.url,
               "--webhook-format", "slack").exit_code == 0
    _run_and_flush_team("ml")
    assert [b["scope"] for b in configured.bodies] == ["global"]
    generic = configured.bodies[0]
    assert generic["event"] == "genops.budget.alert" and generic["threshold"] == 50
    assert Decimal(generic["spent"]) == Decimal("0.00045") and Decimal(generic["limit"]) == Decimal("0.0005")
    assert len(own.bodies) == 1 and "blocks" in own.bodies[0]

    # Removing the budget's own webhook sends its next alerts to the configured one.
    assert cli("budget", "set", "team:ml", "--webhook", "none", "--alert-at", "50,100",
               "--daily", "0.0008").exit_code == 0
    _run_and_flush_team("ml")
    assert any(b.get("scope") == "team:ml" and b["threshold"] == 100 for b in configured.bodies)
    assert len(own.bodies) == 1


def test_bad_webhook_flags_exit_2():
    bad_format = cli("budget", "set", "team:ml", "--daily", "1", "--webhook", "https://hooks.example/x",
                     "--webhook-format", "discord")
    assert bad_format.exit_code == 2 and "webhook format" in bad_format.stderr
    bad_url = cli("budget", "set", "team:ml", "--daily", "1", "--webhook", "hooks.example/x")
    assert bad_url.exit_code == 2 and "--webhook" in bad_url.stderr


def test_runs_left_in_the_spool_raise_an_alert_once_per_file(receivers, tmp_path: Path):
    hook = receivers[0]
    (tmp_path / ".genops.yml").write_text(
        f"alerts:\n  webhook_url: {hook.url}\n  webhook_format: slack\n  spool_minutes: 10\n")
    ran = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    assert ran.exit_code == 0, ran.stderr
    assert hook.bodies == []

    spool = Path(os.environ["GENOPS_LEDGER"] + ".spool")
    spool.mkdir(exist_ok=True)
    stuck = spool / "01a2b3c4-0000-7000-8000-000000000001.1.json"
    stuck.write_text("{}")
    old = time.time() - 30 * 60
    os.utime(stuck, (old, old))
    fresh = spool / "01a2b3c4-0000-7000-8000-000000000002.1.json"
    fresh.write_text("{}")  # younger than 10 minutes: a run being recorded right now, not stuck

    first = cli("runs", "--json")
    assert first.exit_code == 0, first.stderr
    assert "genops alert: 1 run(s) waiting in the spool" in first.stderr
    json.loads(first.stdout)  # stdout stays JSON
    assert len(hook.bodies) == 1
    assert hook.bodies[0]["text"].startswith("genops: 1 run(s) stuck in the spool")

    second = cli("analyze", "--json")
    assert "waiting in the spool" in second.stderr  # every command that sees them says so
    assert len(hook.bodies) == 1  # but the webhook hears about each stuck file once
    writer = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    assert writer.exit_code == 0 and "waiting in the spool" in writer.stderr
    assert len(hook.bodies) == 1


def test_config_budget_can_name_its_own_webhook(priced, receivers, tmp_path: Path):
    hook = receivers[0]
    (tmp_path / ".genops.yml").write_text(
        "budgets:\n  scopes:\n    \"team:ml\":\n      daily: 0.0004\n      alert_at: [100]\n"
        f"      webhook_url: {hook.url}\n      webhook_format: teams-messagecard\n")
    _run_and_flush_team("ml")
    assert [b["@type"] for b in hook.bodies] == ["MessageCard"]
    bad = tmp_path / "bad.yml"
    bad.write_text("budgets:\n  scopes:\n    \"team:ml\": {daily: 1, webhook_format: pager}\n")
    result = cli("budget", "list", "--config", str(bad))
    assert result.exit_code == 2 and "webhook_format" in result.stderr
