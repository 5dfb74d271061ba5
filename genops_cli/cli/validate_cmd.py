"""`genops validate [PIPELINE] [--provider NAME] [--fix-issues] [--yes] [--json]`: is this machine (and this
pipeline) ready? Exit 0 when valid, 1 when errors were found, 2 on bad usage."""

from __future__ import annotations

import sys

import typer

from genops_cli.cli.common import GLOBAL, handle_errors, print_json, stderr_console, stdout_console


def _confirm(assume_yes: bool):  # noqa: ANN202 - a small closure factory
    def confirm(description: str) -> bool:
        if assume_yes:
            stderr_console().print(f"fix: {description}", markup=False)
            return True
        # Prompt on stderr and read stdin directly: stdout carries only the checklist or the JSON.
        sys.stderr.write(f"fix: {description}? [y/N]: ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:  # stdin closed (cron, CI): skip the step, never guess
            sys.stderr.write("\n")
            return False
        return answer.strip().lower() in ("y", "yes")

    return confirm


@handle_errors
def validate(
    pipeline: str = typer.Argument(None, help="Haystack pipeline YAML to check as well (optional)."),
    provider: str = typer.Option(None, "--provider", help="Require this provider's API key (openai, anthropic...)."),
    fix_issues: bool = typer.Option(False, "--fix-issues", help="Repair what is safe, asking before each step."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --fix-issues: apply every step without asking."),
    allow_module: list[str] = typer.Option(None, "--allow-module", help="Trust another module for component types."),
    json_output: bool = typer.Option(False, "--json", help="JSON only on stdout."),
) -> None:
    """Check Python, packages, API keys, .genops.yml, the ledger and optionally a pipeline; suggest fixes."""
    from genops_cli.validation import apply_fixes, print_validation_result, validate_haystack_setup

    def run_checks():  # noqa: ANN202
        return validate_haystack_setup(pipeline, provider=provider, config=GLOBAL.config, ledger=GLOBAL.ledger,
                                       allow_modules=list(allow_module or []))

    result = run_checks()
    fixes = []
    if fix_issues:
        fixes = apply_fixes(result, _confirm(yes), ledger=GLOBAL.ledger, config=GLOBAL.config)
        err = stderr_console()
        for outcome in fixes:
            err.print(f"{'applied' if outcome.applied else 'not applied'}: {outcome.description} "
                      f"({outcome.detail})", markup=False)
        if any(o.applied for o in fixes):
            result = run_checks()
    if json_output:
        out = result.to_json()
        if fix_issues:
            out["fixes"] = [o.to_json() for o in fixes]
        print_json(out)
    else:
        print_validation_result(result, stdout_console())
    raise typer.Exit(0 if result.is_valid else 1)
