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


def _show_diff(description: str, diff: str) -> None:
    err = stderr_console()
    err.print(f"fix: {description}", markup=False)
    for line in diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        err.print(line, style=style, markup=False, highlight=False)


def _rewrite(pipeline: str, out: str | None, assume_yes: bool):  # noqa: ANN202
    """Rewrite the pipeline file: a unified diff per fix, each confirmed (all with --yes)."""
    from genops_cli.validation import rewrite_pipeline

    def confirm(description: str, diff: str) -> bool:
        _show_diff(description, diff)
        if assume_yes:
            return True
        sys.stderr.write("apply this fix? [y/N]: ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            sys.stderr.write("\n")
            return False
        return answer.strip().lower() in ("y", "yes")

    rewrite = rewrite_pipeline(pipeline, confirm, out)
    err = stderr_console()
    if rewrite.target is not None:
        kept = f" (original kept as {rewrite.backup})" if rewrite.backup else ""
        err.print(f"rewrote {rewrite.target}: {len(rewrite.applied)} fix(es) applied{kept}", markup=False)
    for component, message in rewrite.reports:
        err.print(f"left alone: {component}: {message}", markup=False)
    return rewrite


@handle_errors
def validate(
    pipeline: str = typer.Argument(None, help="Haystack pipeline YAML to check as well (optional)."),
    provider: str = typer.Option(None, "--provider", help="Require this provider's API key (openai, anthropic...)."),
    fix_issues: bool = typer.Option(False, "--fix-issues", help="Repair what is safe, asking before each step."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --fix-issues: apply every step without asking."),
    allow_module: list[str] = typer.Option(None, "--allow-module", help="Trust another module for component types."),
    json_output: bool = typer.Option(False, "--json", help="JSON only on stdout."),
    out: str = typer.Option(None, "--out", help="With --fix-issues: write the rewritten pipeline here instead of "
                            "in place (in place keeps PIPELINE.bak)."),
) -> None:
    """Check Python, packages, API keys, .genops.yml, the ledger and optionally a pipeline; suggest fixes."""
    from genops_cli.errors import UsageError
    from genops_cli.validation import apply_fixes, print_validation_result, validate_haystack_setup

    if out and not (fix_issues and pipeline):
        raise UsageError("--out needs --fix-issues and a PIPELINE to rewrite")
    if provider is not None:
        from genops_cli.validation import PROVIDER_KEYS

        if provider.strip().lower() not in PROVIDER_KEYS:
            known = ", ".join(sorted(PROVIDER_KEYS))
            raise UsageError(f"--provider: unknown provider {provider!r}; use one of {known}")
    target = {"pipeline": pipeline}

    def run_checks():  # noqa: ANN202
        return validate_haystack_setup(target["pipeline"], provider=provider, config=GLOBAL.config,
                                       ledger=GLOBAL.ledger, allow_modules=list(allow_module or []))

    result = run_checks()
    fixes = []
    rewrite = None
    if fix_issues and pipeline and any(i.fix == "migrate" for i in result.issues):
        rewrite = _rewrite(pipeline, out, yes)
        if rewrite.target is not None:
            target["pipeline"] = str(rewrite.target)
            result = run_checks()
    elif out:
        stderr_console().print(f"{pipeline}: nothing to rewrite; {out} not written", markup=False)
    if fix_issues:
        fixes = apply_fixes(result, _confirm(yes), ledger=GLOBAL.ledger, config=GLOBAL.config)
        err = stderr_console()
        for outcome in fixes:
            err.print(f"{'applied' if outcome.applied else 'not applied'}: {outcome.description} "
                      f"({outcome.detail})", markup=False)
        if any(o.applied for o in fixes):
            result = run_checks()
    if json_output:
        report = result.to_json()
        if fix_issues:
            report["fixes"] = [o.to_json() for o in fixes]
            report["pipeline_rewrite"] = rewrite.to_json() if rewrite is not None else None
        print_json(report)
    else:
        print_validation_result(result, stdout_console())
    raise typer.Exit(0 if result.is_valid else 1)
