"""Examples shown at the end of each command's help, for commands whose module does not set its own epilog.

Keyed by the command path as typed after `genops`. `common.GenopsGroup` attaches them when the command tree is
built; a test checks that every command ends its help with examples.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "run": [
        "genops run pipeline.yml --inputs q.json --team ml --customer acme-corp --user alice",
        "genops run pipeline.yml --inputs batch.jsonl --concurrency 8 --retries 3 --json > runs.jsonl",
        "genops run pipeline.yml --input prompt_builder.question='What is FOCUS?' --simulate",
    ],
    "estimate": [
        "genops estimate pipeline.yml --inputs batch.jsonl",
        "genops estimate pipeline.yml --inputs q.json --model gpt-4o-mini --json",
    ],
    "compare": [
        "genops compare pipeline.yml --inputs q.json --model gpt-4o --model gpt-4o-mini",
        "genops compare pipeline.yml --inputs batch.jsonl --model gpt-4o-mini --model claude-3-haiku --simulate --json",
    ],
    "validate": [
        "genops validate pipeline.yml",
        "genops validate pipeline.yml --fix-issues --yes",
        "genops validate --json",
    ],
    "analyze": [
        "genops analyze --since 7d --by model",
        "genops analyze --by tag:env --team ml --json",
        "genops analyze --from 2026-10-01 --to 2026-10-31 --by user --format csv",
    ],
    "recommend": [
        "genops recommend",
        "genops recommend --since 7d --team ml --json",
    ],
    "serve": [
        "genops serve --port 9464",
        "genops serve --ledger postgresql://genops@db/genops --host 0.0.0.0",
    ],
    "pricing show": [
        "genops pricing show gpt-4o-mini",
        "genops pricing show claude-3-haiku --at 2026-01-01 --json",
    ],
    "pricing list": [
        "genops pricing list",
        "genops pricing list --json",
    ],
    "pricing check": [
        "genops pricing check pipeline.yml",
        "genops pricing check pipeline.yml --json",
    ],
    "ledger info": [
        "genops ledger info",
        "genops ledger info --ledger ./team.duckdb --json",
    ],
    "ledger drain": [
        "genops ledger drain",
        "genops ledger drain --json",
    ],
    "ledger migrate": [
        "genops ledger migrate --to postgresql://genops@db/genops",
        "genops ledger migrate --from ./old.duckdb --to ./new.duckdb",
    ],
    "ledger hold set": [
        "genops ledger hold set customer:acme-corp --reason 'litigation 2026-14'",
        "genops ledger hold set global --reason 'annual audit' --json",
    ],
    "ledger hold release": [
        "genops ledger hold release customer:acme-corp",
        "genops ledger hold release 01a2b3 --json",
    ],
    "ledger hold list": [
        "genops ledger hold list",
        "genops ledger hold list --all --json",
    ],
    "ledger export": [
        "genops ledger export --table runs --out runs.csv",
        "genops ledger export --table calls --format parquet --out calls.parquet",
    ],
}


def epilog_for(path: str) -> str | None:
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "[bold]Examples[/bold]\n" + "\n".join(f"  {line}" for line in lines)
