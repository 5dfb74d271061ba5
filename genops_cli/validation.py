"""Setup validation: environment, API keys, `.genops.yml`, the ledger and (optionally) one pipeline, as a checklist
with one issue per problem and a fix suggestion for each; plus the safe repairs of `genops validate --fix-issues`.

    result = validate_haystack_setup("pipeline.yml", provider="openai")
    result.is_valid, result.overall_score, result.issues        # ValidationIssue(severity, component, message, ...)
    print_validation_result(result)                             # rich checklist
    apply_fixes(result, confirm=lambda step: True)              # write .genops.yml, create/migrate ledger, ...

Pipelines are checked with the loader `genops run` uses (`genops_cli.execution.loading`): each component that cannot be
imported, was removed in Haystack 3, needs a missing integration package or an unreachable document store server
becomes one issue naming the component; Haystack's own logging and warnings are captured, never printed.
API key values are never printed, only whether they are set and plausibly formatted.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import platform
import re
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SEVERITIES = ("error", "warning", "info")

#: provider -> (environment variables that may hold its key, regex a plausible key matches)
PROVIDER_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "openai": (("OPENAI_API_KEY",), r"^sk-[A-Za-z0-9_\-]{16,}$"),
    "anthropic": (("ANTHROPIC_API_KEY",), r"^sk-ant-[A-Za-z0-9_\-]{16,}$"),
    "azure": (("AZURE_OPENAI_API_KEY",), r"^[A-Za-z0-9]{20,}$"),
    "cohere": (("COHERE_API_KEY", "CO_API_KEY"), r"^[A-Za-z0-9]{20,}$"),
    "mistral": (("MISTRAL_API_KEY",), r"^[A-Za-z0-9]{20,}$"),
    "google": (("GOOGLE_API_KEY", "GEMINI_API_KEY"), r"^[A-Za-z0-9_\-]{20,}$"),
    "huggingface": (("HF_API_TOKEN", "HF_TOKEN"), r"^hf_[A-Za-z0-9]{20,}$"),
    "groq": (("GROQ_API_KEY",), r"^gsk_[A-Za-z0-9]{20,}$"),
    "openrouter": (("OPENROUTER_API_KEY",), r"^sk-or-[A-Za-z0-9_\-]{16,}$"),
    "aws": (("AWS_ACCESS_KEY_ID",), r"^[A-Z0-9]{16,}$"),
}

#: Init parameters that hold an LLM component's own API key or token (an Agent's: its chat generator's), as
#: `_env_secrets` names them; a tool's or a store's secrets belong to another service.
_KEY_PARAMS = ("api_key", "token", "api_token")
_OWN_KEY_PARAMS = (*_KEY_PARAMS, *(f"chat_generator.init_parameters.{key}" for key in _KEY_PARAMS))

#: haystack_integrations document stores that talk to a server, with the init parameters naming it.
_SERVER_KEYS = ("url", "hosts", "host", "location", "connection_string", "cluster_url", "http_host")

DEFAULT_CONFIG = """\
# genops configuration (https://github.com/ -> README "Configuration"). Precedence: flags > GENOPS_* > this file.
# Every key is optional; uncomment what you need.

# ledger: ~/.genops/ledger.duckdb            # or postgresql://user@host/db (GENOPS_LEDGER)

haystack:
  # default_team: ml                        # genops.team (GENOPS_TEAM)
  # default_project: search                 # genops.project (GENOPS_PROJECT)
  environment: development                  # genops.environment (GENOPS_ENVIRONMENT)
  # daily_budget_limit: 50.00               # USD, scope global (GENOPS_DAILY_BUDGET_LIMIT)
  # monthly_budget_limit: 1000.00           # USD (GENOPS_MONTHLY_BUDGET_LIMIT)
  governance_policy: advisory               # advisory | enforcing | monitoring (GENOPS_GOVERNANCE_POLICY)

# budgets:
#   timezone: UTC                           # calendar periods reset in this zone
#   alert_at: [50, 80, 95, 100]
#   scopes:
#     "team:ml": {daily: 10, monthly: 200, policy: enforcing}

# providers:
#   openai: {default_model: gpt-4o-mini, timeout: 30}

observability:
  capture_content: false                    # never store prompts/replies unless true
  # otlp_endpoint: http://localhost:4318    # OpenTelemetry export (pip install 'genops-cli[otel]')
  # service_name: genops
"""


@dataclass
class ValidationIssue:
    """One problem: `component` is what it is about (a pipeline component, `.genops.yml`, `ledger`, a package)."""

    severity: str
    component: str
    message: str
    fix_suggestion: str
    #: a repair `apply_fixes` can make: write_config | create_ledger | migrate_ledger | drain_spool | pip:<package>
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "component": self.component, "message": self.message,
                "fix_suggestion": self.fix_suggestion}


@dataclass
class Check:
    """One line of the checklist."""

    name: str
    passed: bool
    detail: str = ""
    severity: str = "error"  # of the failure


@dataclass
class ValidationResult:
    is_valid: bool = True
    overall_score: float = 100.0
    environment: dict[str, Any] = field(default_factory=dict)
    issues: list[ValidationIssue] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def get_error_count(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")

    def get_warning_count(self) -> int:
        return sum(1 for i in self.issues if i.severity == "warning")

    def to_json(self) -> dict[str, Any]:
        return {"is_valid": self.is_valid, "overall_score": self.overall_score, "environment": self.environment,
                "issues": [i.to_json() for i in self.issues],
                "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks]}


class _Collector:
    def __init__(self) -> None:
        self.result = ValidationResult()

    def check(self, name: str, passed: bool, detail: str = "", severity: str = "error") -> None:
        self.result.checks.append(Check(name, passed, detail, severity))

    def issue(self, severity: str, component: str, message: str, fix_suggestion: str,
              fix: str | None = None) -> None:
        self.result.issues.append(ValidationIssue(severity, component, message, fix_suggestion, fix))

    def finish(self) -> ValidationResult:
        r = self.result
        # Score: each check counts 1; a failed warning-level check earns half.
        if r.checks:
            earned = sum(1.0 if c.passed else (0.5 if c.severity == "warning" else 0.0) for c in r.checks)
            r.overall_score = round(100.0 * earned / len(r.checks), 1)
        r.is_valid = r.get_error_count() == 0
        return r


# -- public -------------------------------------------------------------------------------------------------

def validate_haystack_setup(pipeline: str | Path | None = None, provider: str | None = None,
                            config: str | Path | None = None, ledger: str | None = None,
                            allow_modules: list[str] | None = None) -> ValidationResult:
    """Check the environment, API keys, configuration, ledger and optionally one pipeline YAML."""
    c = _Collector()
    _check_python(c)
    settings = _check_config(c, config, ledger)
    pipeline_info = None
    with _captured_output():
        if pipeline is not None:
            pipeline_info = _check_pipeline(c, Path(pipeline), settings, list(allow_modules or []))
    _check_packages(c, pipeline_info)
    _check_keys(c, provider, pipeline_info)
    _check_ledger(c, settings, ledger)
    if pipeline_info is not None:
        c.result.environment["pipeline"] = {k: v for k, v in pipeline_info.items() if not k.startswith("_")}
    return c.finish()


def print_validation_result(result: ValidationResult, console: Any = None) -> None:
    """The checklist with the overall score and a fix suggestion per issue (rich; plain when not a TTY)."""
    from rich.console import Console

    console = console or Console(highlight=False, emoji=False)
    env = result.environment
    mark = "[green]✔[/green]" if result.is_valid else "[red]✘[/red]"
    console.print(f"{mark} [bold]Haystack + genops setup validation[/bold]", markup=True)
    console.print(f"Overall score: {result.overall_score:.1f}%  ({result.get_error_count()} error(s), "
                  f"{result.get_warning_count()} warning(s))")
    py = env.get("python", {})
    console.print(f"Python {py.get('version', '?')} ({py.get('platform', '?')})", markup=False)
    for name, version in (env.get("packages") or {}).items():
        console.print(f"  {name}: {version or 'not installed'}", markup=False)
    for check in result.checks:
        symbol = "[green]✔[/green]" if check.passed else ("[yellow]![/yellow]" if check.severity != "error"
                                                          else "[red]✘[/red]")
        console.print(f"{symbol} {_esc(check.name)}" + (f" — {_esc(check.detail)}" if check.detail else ""),
                      markup=True)
    if result.issues:
        console.print("[bold]Issues[/bold]", markup=True)
    for issue in result.issues:
        colour = {"error": "red", "warning": "yellow"}.get(issue.severity, "cyan")
        console.print(f"[{colour}]{issue.severity}[/{colour}] {_esc(issue.component)}: {_esc(issue.message)}",
                      markup=True)
        console.print(f"    fix: {_esc(issue.fix_suggestion)}", markup=True)


# -- checks -------------------------------------------------------------------------------------------------

def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _check_python(c: _Collector) -> None:
    ok = sys.version_info >= (3, 10)
    version = platform.python_version()
    c.result.environment["python"] = {"version": version, "platform": sys.platform,
                                      "executable": sys.executable}
    c.check(f"Python {version}", ok, "" if ok else "genops needs Python 3.10 or newer")
    if not ok:
        c.issue("error", "python", f"Python {version} is too old", "use Python 3.10 or newer")


def _check_packages(c: _Collector, pipeline_info: dict[str, Any] | None) -> None:
    packages = {name: _version(name) for name in ("haystack-ai", "genops-cli", "duckdb")}
    needed = sorted((pipeline_info or {}).get("_integration_packages", set()))
    for name in needed:
        packages[name] = _version(name)
    c.result.environment["packages"] = packages
    for name in ("haystack-ai", "duckdb"):
        c.check(f"{name} installed", packages[name] is not None, packages[name] or "missing")
        if packages[name] is None:
            c.issue("error", name, f"{name} is not installed", f"pip install {name}", fix=f"pip:{name}")
    hv = packages["haystack-ai"]
    if hv is not None and not hv.startswith("3."):
        numbers = tuple(int(p) for p in re.findall(r"\d+", hv)[:2])
        supported = numbers >= (2, 31)
        c.check("haystack-ai 3.x", False, hv, severity="warning" if supported else "error")
        if supported:  # the last 2.x release is supported; Haystack 3 is the target
            c.issue("warning", "haystack-ai", f"haystack-ai {hv} is Haystack 2.x: genops supports it, Haystack 3 is "
                    "the target", "pip install 'haystack-ai>=3,<4' (genops validate --fix-issues migrates pipelines)")
        else:
            c.issue("error", "haystack-ai", f"haystack-ai {hv} is installed; genops needs haystack-ai 2.31 or 3.x",
                    "pip install 'haystack-ai>=3,<4'")
    for name in needed:
        c.check(f"integration {name}", packages[name] is not None, packages[name] or "missing")


def _key_status(var_names: tuple[str, ...], pattern: str) -> tuple[str | None, str]:
    """(variable found, 'set' | 'implausible' | 'missing'). The value itself is never returned."""
    for var in var_names:
        value = os.environ.get(var)
        if value:
            plausible = value == value.strip() and re.match(pattern, value) is not None
            return var, "set" if plausible else "implausible"
    return None, "missing"


def _check_keys(c: _Collector, provider: str | None, pipeline_info: dict[str, Any] | None) -> None:
    statuses: dict[str, str] = {}
    for name, (variables, pattern) in PROVIDER_KEYS.items():
        statuses[name] = _key_status(variables, pattern)[1]
    c.result.environment["providers"] = statuses
    required: list[str] = []
    if provider:
        key = provider.strip().lower()
        if key not in PROVIDER_KEYS:
            c.issue("error", f"provider {provider}", f"unknown provider {provider!r}",
                    f"use one of {', '.join(sorted(PROVIDER_KEYS))}")
            c.check(f"provider {provider}", False, "unknown")
            return
        required.append(key)
    secret_checked = (pipeline_info or {}).get("_secret_checked", {})
    for p in (pipeline_info or {}).get("_providers", []):
        if p in PROVIDER_KEYS and p not in required:
            required.append(p)
    for name in required:
        variables, pattern = PROVIDER_KEYS[name]
        declared = secret_checked.get(name)
        if isinstance(declared, tuple) and name != (provider or "").strip().lower():
            # The pipeline names its own variables for this provider (checked by component above): judge those.
            variables = declared
        var, status = _key_status(variables, pattern)
        label = " or ".join(variables)
        c.check(f"{name} API key", status == "set", f"{var or label} {status}")
        if status == "missing" and declared and name != (provider or "").strip().lower():
            continue  # already reported as an unresolvable secret of the pipeline, by component
        if status == "missing":
            c.issue("error", f"provider {name}", f"no API key: {label} is not set",
                    f"export {variables[0]}=... (the key from your {name} account)")
        elif status == "implausible":
            c.issue("warning", f"provider {name}", f"{var} is set but does not look like a {name} key "
                    "(wrong prefix, too short or surrounding whitespace)", f"check the value of {var}")
    if not required:
        available = [n for n, s in statuses.items() if s == "set"]
        implausible = [n for n, s in statuses.items() if s == "implausible"]
        detail = ", ".join([*available, *(f"{n} (set, implausible)" for n in implausible)]) or "none set"
        c.check("AI provider keys", bool(available), detail, severity="warning")
        if not available and not implausible:
            c.issue("warning", "providers", "no provider API key is set (real runs need one; --simulate does not)",
                    "export OPENAI_API_KEY=... (or the key of the provider your pipelines use)")
        for name, status in statuses.items():
            if status == "implausible":
                var = _key_status(*PROVIDER_KEYS[name])[0]
                c.issue("warning", f"provider {name}", f"{var} is set but does not look like a {name} key",
                        f"check the value of {var}")


def _check_config(c: _Collector, config: str | Path | None, ledger: str | None) -> Any:
    from genops_cli.config import Settings, find_config, load_settings
    from genops_cli.errors import ConfigError

    try:
        path = find_config(config)
    except ConfigError as exc:
        c.check("configuration file", False, str(exc))
        c.issue("error", "config", str(exc), "pass an existing file with --config or unset GENOPS_CONFIG")
        return Settings()
    try:
        settings = load_settings(config, ledger)
    except ConfigError as exc:
        where = str(path) if path else "environment"
        c.check(f"configuration {where}", False, str(exc))
        c.issue("error", Path(where).name if path else "environment", str(exc),
                "fix the key named above (see README, Configuration)")
        try:
            # Keep going with the environment and defaults so the other checks still run.
            return load_settings(os.devnull, ledger) if path else Settings()
        except ConfigError:
            return Settings()
    c.result.environment["config"] = str(path) if path else None
    if path is None:
        c.check(".genops.yml", True, "none (defaults and GENOPS_* variables)")
        c.issue("info", ".genops.yml", "no .genops.yml in this directory: defaults and GENOPS_* variables apply",
                "genops validate --fix-issues writes a commented default .genops.yml", fix="write_config")
    else:
        c.check(f"configuration {path.name}", True, "valid")
    return settings


def _check_ledger(c: _Collector, settings: Any, ledger_flag: str | None) -> None:
    from genops_cli.errors import GenopsError
    from genops_cli.ledger.schema import CURRENT_VERSION
    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger, resolve_ledger_location

    location = resolve_ledger_location(ledger_flag, settings.ledger)
    info: dict[str, Any] = {"location": location, "exists": None, "schema_version": None,
                            "current_schema_version": CURRENT_VERSION, "spool_pending": 0}
    c.result.environment["ledger"] = info
    try:
        ledger = open_ledger(location)
    except GenopsError as exc:
        c.check("ledger reachable", False, str(exc))
        c.issue("error", "ledger", str(exc), "check --ledger / GENOPS_LEDGER / ledger: in .genops.yml")
        return
    info["location"] = ledger.display
    info["backend"] = ledger.backend
    spool = Spool(ledger.spool_dir())
    info["spool_pending"] = len(spool)
    try:
        exists = ledger.exists()
    except GenopsError as exc:
        c.check("ledger reachable", False, str(exc))
        c.issue("error", "ledger", str(exc), "start the database or fix the URL")
        return
    info["exists"] = exists
    if ledger.backend == "duckdb":
        path = Path(ledger.location)
        folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("/"))
        writable = os.access(path if exists else folder, os.W_OK)
        c.check("ledger writable", writable, str(path))
        if not writable:
            c.issue("error", "ledger", f"{path} is not writable by this user",
                    "fix the permissions or choose another location with --ledger / GENOPS_LEDGER")
            return
    if not exists:
        c.check("ledger exists", False, f"{ledger.display} will be created on first run", severity="warning")
        c.issue("warning", "ledger", f"no ledger at {ledger.display} yet",
                "genops validate --fix-issues creates it (or the first genops run does)", fix="create_ledger")
    else:
        try:
            version = _stored_schema_version(ledger)
        except GenopsError as exc:
            c.check("ledger readable", False, str(exc))
            c.issue("error", "ledger", str(exc), "close the other process holding it, or run genops ledger recover")
            return
        info["schema_version"] = version
        current = version == CURRENT_VERSION
        c.check("ledger schema current", current, f"version {version} (current {CURRENT_VERSION})")
        if version is not None and version > CURRENT_VERSION:
            c.issue("error", "ledger", f"schema version {version} is newer than this genops ({CURRENT_VERSION})",
                    "pip install -U genops-cli")
        elif not current:
            c.issue("error", "ledger", f"schema version {version} is older than {CURRENT_VERSION}",
                    "genops validate --fix-issues migrates it (or genops ledger migrate)", fix="migrate_ledger")
    pending = info["spool_pending"]
    c.check("spool empty", pending == 0, f"{pending} run(s) waiting in {ledger.spool_dir()}", severity="warning")
    if pending:
        c.issue("warning", "spool", f"{pending} run(s) are in the spool but not in the ledger yet",
                "genops validate --fix-issues drains it (or genops ledger drain)", fix="drain_spool")


def _stored_schema_version(ledger: Any) -> int | None:
    """The schema version as stored, without migrating (read-only for DuckDB)."""
    if ledger.backend == "duckdb":
        import duckdb

        from genops_cli.errors import LedgerError

        try:
            conn = duckdb.connect(ledger.location, read_only=True)
        except duckdb.Error as exc:
            raise LedgerError(f"ledger {ledger.location}: cannot open ({str(exc).splitlines()[0]})") from None
        try:
            tables = conn.execute("SELECT COUNT(*) FROM information_schema.tables "
                                  "WHERE table_name = 'schema_version'").fetchone()[0]
            return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if tables else None
        finally:
            conn.close()
    with ledger.read() as tx:
        return tx.scalar("SELECT MAX(version) FROM schema_version")


# -- the pipeline -------------------------------------------------------------------------------------------

def _check_pipeline(c: _Collector, path: Path, settings: Any, allow_modules: list[str]) -> dict[str, Any] | None:
    from genops_cli.errors import GenopsError
    from genops_cli.execution.loading import integration_package_for, profile_pipeline_data, read_pipeline_file

    try:
        p, _text, data = read_pipeline_file(path)
    except GenopsError as exc:
        c.check(f"pipeline {path}", False, "cannot be read")
        # The issue is already about the file: its message without the file name, its fix the message's own
        text = str(exc).removeprefix(f"{path}: ")
        problem, _, fix = text.rpartition("; ")
        c.issue("error", str(path), problem or text,
                fix if problem else "pass a Haystack pipeline YAML written by Pipeline.dumps()",
                fix="migrate" if "--fix-issues rewrites it" in fix else None)
        return None
    info: dict[str, Any] = {"path": str(p), "components": len(data["components"]), "_integration_packages": set(),
                            "_providers": [], "_secret_checked": {}}
    # Integration packages the pipeline needs (whether or not they are installed).
    for comp in data["components"].values():
        if isinstance(comp, dict):
            for type_path in _types_in(comp):
                package = integration_package_for(type_path.rpartition(".")[0])
                if package:
                    info["_integration_packages"].add(package)
    migrating = _check_migrations(c, data, info)
    blocked = _check_component_types(c, p, data, allow_modules, migrating)

    profile = profile_pipeline_data(p, data)
    info["name"] = profile.name
    llms = profile.llm_components()
    info["_providers"] = sorted({comp.provider for comp in llms if comp.provider})
    info["models"] = [{"component": comp.name, "provider": comp.provider, "model": comp.model} for comp in llms]
    _check_pipeline_secrets(c, data, profile, info)
    _check_prices(c, llms)
    _check_compliance(c, settings, llms)
    _check_document_stores(c, data)
    if blocked:
        c.check("pipeline loads", False, "skipped: fix the issues above first")
        return info
    _check_loads(c, p, data, allow_modules, info, profile.name)
    return info


def _check_migrations(c: _Collector, data: dict[str, Any], info: dict[str, Any]) -> set[str]:
    """One issue per fix the migration table makes (and per change it leaves to the user); the components
    concerned."""
    from genops_cli.execution.migrate import plan_migrations

    plan = plan_migrations(data)
    info["_migration"] = plan
    for fix in plan.fixes:
        old_type, new_type = fix.old_type, fix.new_type
        install = f" (pip install {fix.package})" if fix.package else ""
        if old_type == new_type:
            c.issue("error", fix.component, f"{fix.title}: {'; '.join(fix.details)}",
                    "genops validate --fix-issues rewrites them (a diff is shown first)", fix="migrate")
        else:
            c.issue("error", fix.component, f"{old_type} was removed in Haystack 3 or moved out of haystack-ai; "
                    f"its replacement is {new_type}{install}",
                    f"genops validate --fix-issues rewrites it to {new_type} (a diff is shown first)", fix="migrate")
        for detail in fix.details:
            if "PromptBuilder -> ChatPromptBuilder" in detail:
                builder = detail.split(":", 1)[0]
                c.issue("warning", builder, f"PromptBuilder feeds {fix.component}, which becomes a chat generator",
                        "genops validate --fix-issues turns it into a ChatPromptBuilder with the same template")
    for name, message in plan.reports:
        c.issue("error", name, message, "change it by hand; genops leaves what is not mechanically equivalent alone")
    migrating = {fix.component for fix in plan.fixes} | {name for name, _ in plan.reports}
    c.check("no Haystack 2.x classes", not migrating,
            f"{len(migrating)} component(s) to migrate" if migrating else "none")
    return migrating


def _check_component_types(c: _Collector, p: Path, data: dict[str, Any], allow_modules: list[str],
                           migrating: set[str]) -> bool:
    """Types that cannot be built and optional modules that are missing; True when the pipeline cannot load."""
    from genops_cli.execution.loading import component_type_issues
    from genops_cli.execution.migrate import missing_optional_dependencies

    type_problems = {name: message for name, message in component_type_issues(p, data, allow_modules)
                     if name not in migrating}
    for name, message in type_problems.items():
        fix = None
        suggestion = message.rsplit("; ", 1)[-1] if "; " in message else "check the component's type"
        match = re.search(r"pip install ([\w\-\[\]]+)", message)
        if match:
            fix = f"pip:{match.group(1)}"
        text = re.sub(r"^.*?component '[^']+': ", "", message).rsplit("; ", 1)[0]
        c.issue("error", name, text, suggestion, fix=fix)
    c.check("component types importable", not type_problems,
            f"{len(type_problems)} of {len(data['components'])} component(s) cannot be built" if type_problems
            else f"{len(data['components'])} component(s)")
    missing_deps = missing_optional_dependencies(data)
    for name, module, package in missing_deps:
        c.issue("error", name, f"needs the Python module {module}, which it imports only when it runs and is not "
                "installed", f"pip install {package}", fix=f"pip:{package}")
    c.check("optional dependencies installed", not missing_deps,
            ", ".join(sorted({package for _n, _m, package in missing_deps})) + " missing" if missing_deps else "")
    return bool(type_problems or migrating or missing_deps)


def _check_pipeline_secrets(c: _Collector, data: dict[str, Any], profile: Any, info: dict[str, Any]) -> None:
    """Every env-var secret resolvable (names only, never values); which variables hold each provider's key."""
    from genops_cli.execution.loading import _env_secrets

    providers_by_component = {
        name: (prof.inner.provider if prof.inner is not None else prof.provider)
        for name, prof in profile.components.items()}
    missing_secrets = 0
    for name, comp in data["components"].items():
        for param, env_vars, strict in _env_secrets((comp or {}).get("init_parameters") or {}):
            present = [v for v in env_vars if os.environ.get(v)]
            own = providers_by_component.get(name)
            if own in PROVIDER_KEYS and param in _OWN_KEY_PARAMS:
                # the provider's key comes from the variables this pipeline names, not the usual ones
                info["_secret_checked"][own] = tuple(env_vars)
            for prov, (variables, _pattern) in PROVIDER_KEYS.items():
                if set(env_vars) & set(variables):
                    info["_secret_checked"].setdefault(prov, True)
            if not present and strict:
                missing_secrets += 1
                c.issue("error", name, f"init parameter '{param}' needs {' or '.join(env_vars)}, which is not set",
                        f"export {env_vars[0]}=... (or run with --simulate)")
    c.check("secrets resolvable", missing_secrets == 0,
            f"{missing_secrets} missing" if missing_secrets else "all set")


def _check_loads(c: _Collector, p: Path, data: dict[str, Any], allow_modules: list[str], info: dict[str, Any],
                 name: str) -> None:
    from genops_cli.errors import GenopsError
    from genops_cli.execution.loading import load_pipeline

    try:
        loaded = load_pipeline(p, allow_modules=allow_modules, check_secrets=False)
    except GenopsError as exc:
        message = str(exc)
        component = _component_in(message, data) or ("connections" if ": connections:" in message else p.name)
        c.check("pipeline loads", False, "see issues")
        c.issue("error", component, re.sub(r"^.*?(component '[^']+'|connections): ", "", message), _load_fix(message))
        return
    c.check("pipeline loads", True, f"{name}: connections valid")
    info["required_inputs"] = _required_inputs(loaded.pipeline)


def _types_in(comp: dict[str, Any]) -> list[str]:
    from genops_cli.execution.loading import _nested_types

    try:
        return _nested_types(comp)
    except (KeyError, TypeError):
        return []


def _component_in(message: str, data: dict[str, Any]) -> str | None:
    match = re.search(r"component '([^']+)'", message)
    if match and match.group(1) in data["components"]:
        return match.group(1)
    return None


def _load_fix(message: str) -> str:
    """The fix for a load failure, from its root cause (never a guess: unknown causes say what to read)."""
    env = re.search(r"environment variables? (?:are|is) (?:not )?set: \(?'?([A-Z][A-Z0-9_]+)", message) or re.search(
        r"\b([A-Z][A-Z0-9]*_(?:API_KEY|TOKEN|KEY|SECRET))\b", message)
    if env and ("not set" in message or "None of the following" in message):
        return f"export {env.group(1)}=... (or run with --simulate)"
    package = re.search(r"pip install ['\"]?([\w.\-\[\]]+(?:[<>=][^'\" ]+)?)", message)
    if package:
        return f"pip install {package.group(1)}"
    if ": connections:" in message or "connect" in message.lower() and "socket" in message.lower():
        return "fix the sender/receiver names or socket types in 'connections' (Pipeline.dumps() writes them)"
    if "unknown init parameter" in message:
        return "remove the parameter or upgrade the integration package"
    return "the message above names the cause; fix it in the component or the environment"


def _required_inputs(pipeline: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    try:
        for component, sockets in pipeline.inputs().items():
            names = [s for s, spec in sockets.items() if spec.get("is_mandatory")]
            if names:
                out[component] = names
    except Exception:  # a pipeline that cannot report inputs still loaded; inputs are checked at run time
        return out
    return out


def _check_prices(c: _Collector, llms: list[Any]) -> None:
    from genops_cli.pricing import get_price_book

    book = get_price_book()
    unpriced = []
    for comp in llms:
        if not comp.model:
            unpriced.append(comp.name)
            c.issue("warning", comp.name, f"{comp.type_name} has no model in its init parameters",
                    "set 'model' so genops can price its calls")
            continue
        if book.resolve(comp.model, comp.provider) is None:
            unpriced.append(comp.name)
            c.issue("error", comp.name, f"model {comp.provider or '?'}:{comp.model} has no price",
                    "add it to a price overlay (pricing.dirs in .genops.yml or GENOPS_PRICING_DIR)")
    c.check("every model priced", not unpriced,
            f"unpriced: {', '.join(unpriced)}" if unpriced else f"{len(llms)} model call site(s)")


def _check_compliance(c: _Collector, settings: Any, llms: list[Any]) -> None:
    """The configured compliance allowlists (default classification) against the pipeline's models."""
    cfg = getattr(settings, "compliance", None)
    rules_for = getattr(cfg, "rules_for", None)
    if rules_for is None or not getattr(cfg, "configured", False):
        return
    rules = rules_for(settings.attribution.data_classification)
    bad = []
    for comp in llms:
        if rules.allowed_providers is not None and comp.provider not in rules.allowed_providers:
            bad.append(comp.name)
            c.issue("error", comp.name, f"provider {comp.provider} is not in compliance.allowed_providers",
                    f"use one of {', '.join(rules.allowed_providers)} or extend the allowlist")
        elif rules.allowed_models is not None and comp.model not in rules.allowed_models:
            bad.append(comp.name)
            c.issue("error", comp.name, f"model {comp.model} is not in compliance.allowed_models",
                    f"use one of {', '.join(rules.allowed_models)} or extend the allowlist")
    c.check("allowlist satisfied", not bad, ", ".join(bad) if bad else "all models allowed")


def _check_document_stores(c: _Collector, data: dict[str, Any]) -> None:
    for name, comp in data["components"].items():
        params = (comp or {}).get("init_parameters") or {}
        store = params.get("document_store")
        if not isinstance(store, dict) or not isinstance(store.get("type"), str):
            continue
        store_type = store["type"].rsplit(".", 1)[-1]
        if store_type == "InMemoryDocumentStore":
            continue
        target = _server_address(store.get("init_parameters") or {})
        if target is None:
            c.issue("info", name, f"{store_type} needs a database server; its address is not in the YAML",
                    "make sure the server is reachable from where the pipeline runs")
            continue
        host, port = target
        reachable = _tcp_reachable(host, port)
        c.check(f"{name}: {store_type} server {host}:{port}", reachable, "reachable" if reachable else "unreachable")
        if not reachable:
            c.issue("error", name, f"{store_type} needs a server at {host}:{port}, which is not reachable",
                    "start the server (genops run --simulate uses an in-memory store filled from --documents instead)")


def _server_address(params: dict[str, Any]) -> tuple[str, int] | None:
    defaults = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432}
    for key in _SERVER_KEYS:
        value = params.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, dict):  # a Secret: the address lives in an environment variable
            env_vars = value.get("env_vars") or []
            value = next((os.environ[v] for v in env_vars if os.environ.get(v)), None)
        if not isinstance(value, str) or not value:
            continue
        if "://" in value:
            parsed = urlparse(value)
            if parsed.hostname:
                return parsed.hostname, parsed.port or defaults.get(parsed.scheme, 80)
        elif key in ("host", "http_host"):
            port = params.get("port") or params.get("http_port") or 80
            return value, int(port)
    return None


def _tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Keep third-party logging, warnings and stray stderr writes (Haystack's) out of the user's terminal."""
    captured: list[str] = []

    class _ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record.getMessage())

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    others = [(lg, lg.handlers[:], lg.propagate) for lg in logging.Logger.manager.loggerDict.values()
              if isinstance(lg, logging.Logger) and lg.handlers]
    root.handlers = [_ListHandler()]
    for lg, _handlers, _propagate in others:
        lg.handlers = []
        lg.propagate = True
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()) as err:
            warnings.simplefilter("ignore")
            yield captured
        captured.extend(err.getvalue().splitlines())
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        for lg, handlers, propagate in others:
            lg.handlers = handlers
            lg.propagate = propagate


# -- fixes --------------------------------------------------------------------------------------------------

@dataclass
class FixOutcome:
    fix: str
    description: str
    applied: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"fix": self.fix, "description": self.description, "applied": self.applied, "detail": self.detail}


def planned_fixes(result: ValidationResult) -> list[tuple[str, str]]:
    """(fix id, what it does) for the safe repairs the result calls for, in a sensible order."""
    order = {"write_config": 0, "create_ledger": 1, "migrate_ledger": 1, "drain_spool": 2}
    seen: dict[str, str] = {}
    packages: list[str] = []
    for issue in result.issues:
        if not issue.fix or issue.fix in seen or issue.fix == "migrate":  # the pipeline rewrite runs first
            continue
        if issue.fix.startswith("pip:"):
            packages.append(issue.fix[4:])
            continue
        seen[issue.fix] = {
            "write_config": f"write a commented default .genops.yml in {Path.cwd()}",
            "create_ledger": f"create the ledger at {result.environment.get('ledger', {}).get('location')}",
            "migrate_ledger": "migrate the ledger schema to the current version",
            "drain_spool": "ingest the spooled runs into the ledger",
        }.get(issue.fix, issue.fix)
    steps = sorted(seen.items(), key=lambda kv: order.get(kv[0], 9))
    if packages:
        unique = sorted(set(packages))
        steps.append((f"pip:{' '.join(unique)}", f"{sys.executable} -m pip install {' '.join(unique)}"))
    return steps


def apply_fixes(result: ValidationResult, confirm: Callable[[str], bool], ledger: str | None = None,
                config: str | Path | None = None,
                run_command: Callable[[list[str]], int] | None = None) -> list[FixOutcome]:
    """Make each planned repair that `confirm(description)` accepts. Nothing destructive: an existing
    .genops.yml is never overwritten, ledger changes are the migrations `genops` applies anyway."""
    outcomes = []
    for fix, description in planned_fixes(result):
        if not confirm(description):
            outcomes.append(FixOutcome(fix, description, False, "skipped"))
            continue
        try:
            detail = _apply_one(fix, ledger, config, run_command)
            outcomes.append(FixOutcome(fix, description, True, detail))
        except Exception as exc:  # report the failed step and go on with the others
            outcomes.append(FixOutcome(fix, description, False, f"failed: {type(exc).__name__}: {exc}"))
    return outcomes


def _apply_one(fix: str, ledger_flag: str | None, config: str | Path | None,
               run_command: Callable[[list[str]], int] | None) -> str:
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger, resolve_ledger_location

    if fix == "write_config":
        target = Path.cwd() / ".genops.yml"
        if target.exists():
            return f"{target} exists; left unchanged"
        target.write_text(DEFAULT_CONFIG, encoding="utf-8")
        return f"wrote {target}"
    if fix.startswith("pip:"):
        return _pip_install(fix[4:].split(), run_command)
    settings = load_settings(config, ledger_flag)
    ledger = open_ledger(resolve_ledger_location(ledger_flag, settings.ledger))
    if fix in ("create_ledger", "migrate_ledger"):
        with ledger.write():
            pass  # the writer path creates and migrates the schema
        return f"ledger ready at {ledger.display}"
    if fix == "drain_spool":
        from genops_cli.ledger.records import drain

        outcome = drain(ledger)
        if outcome.error:
            raise RuntimeError(outcome.error)
        return f"ingested {len(outcome.inserted)}, already recorded {len(outcome.duplicates)}"
    raise ValueError(f"unknown fix {fix}")


def _run(command: list[str]) -> int:
    return subprocess.call(command)


def _pip_install(packages: list[str], run_command: Callable[[list[str]], int] | None) -> str:
    """Install each package on its own; pip's output is condensed to one line per package (its last ERROR line
    when it fails). Raises when any failed, after trying all."""
    lines, failed = [], []
    for package in packages:
        command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", package]
        if run_command is not None:
            code, output = run_command(command), ""
        else:
            done = subprocess.run(command, capture_output=True, text=True)
            code, output = done.returncode, f"{done.stdout}\n{done.stderr}"
        if code == 0:
            lines.append(f"{package} {_version(package.split('[')[0]) or ''}".strip() + " installed")
        else:
            errors = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR")]
            reason = errors[-1].removeprefix("ERROR:").strip() if errors else f"pip exited with {code}"
            lines.append(f"{package} failed ({reason})")
            failed.append(package)
    importlib.invalidate_caches()  # the re-check in this process must see what was just installed
    if failed:
        raise RuntimeError("; ".join(lines))
    return "; ".join(lines)


# -- pipeline rewrite (--fix-issues) ----------------------------------------------------------------------------

@dataclass
class PipelineRewrite:
    """What `rewrite_pipeline` did: applied and declined fixes, what it left alone, where it wrote."""

    source: Path
    target: Path | None = None
    backup: Path | None = None
    applied: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    reports: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"source": str(self.source), "target": str(self.target) if self.target else None,
                "backup": str(self.backup) if self.backup else None, "applied": self.applied,
                "declined": self.declined,
                "left_alone": [{"component": c, "message": m} for c, m in self.reports]}


def dump_pipeline(data: dict[str, Any]) -> str:
    """YAML as Haystack writes it (tuples as !!python/tuple), keys in the file's order."""
    import yaml

    try:
        from haystack.marshal.yaml import YamlDumper
    except ImportError:  # pragma: no cover - every supported Haystack has it
        YamlDumper = yaml.SafeDumper  # noqa: N806
    return yaml.dump(data, Dumper=YamlDumper, sort_keys=False, allow_unicode=True, width=120)


def _read_v1(path: str | Path) -> dict[str, Any] | None:
    """A Haystack 1.x pipeline file's data, else None."""
    from genops_cli.errors import PipelineLoadError
    from genops_cli.execution.migrate_v1 import is_v1
    from genops_cli.safe_load import parse_yaml, read_text

    try:
        data = parse_yaml(read_text(Path(path), "pipeline", PipelineLoadError, label=str(path)), str(path),
                          "pipeline", PipelineLoadError, tuples=True)
    except PipelineLoadError:
        return None
    return data if is_v1(data) else None


def rewrite_pipeline(path: str | Path, confirm: Callable[[str, str], bool],
                     out: str | Path | None = None) -> PipelineRewrite:
    """Apply the migration table's fixes to a pipeline file, one confirmed fix at a time:
    `confirm(description, unified diff)` decides each. In place (keeping PIPELINE.bak) unless `out` is given."""
    import difflib
    import shutil

    from genops_cli.errors import PipelineLoadError
    from genops_cli.execution.loading import read_pipeline_file
    from genops_cli.execution.migrate import plan_migrations
    from genops_cli.execution.migrate_v1 import convert_v1

    converted_notes: list[tuple[str, str]] = []
    try:
        p, _text, current = read_pipeline_file(path)
        target = Path(out) if out else p
        outcome = PipelineRewrite(source=p)
    except PipelineLoadError:
        # A Haystack 1.x file: converted as a whole first (one confirmed fix), then migrated like any other
        p, current = Path(path), _read_v1(path)
        if current is None:
            raise
        target = Path(out) if out else p
        outcome = PipelineRewrite(source=p)
        converted, notes = convert_v1(current, p)
        diff = "".join(difflib.unified_diff(dump_pipeline(current).splitlines(True),
                                            dump_pipeline(converted).splitlines(True),
                                            fromfile=f"{p} (before)", tofile=str(target)))
        title = "pipeline: Haystack 1.x -> Haystack 3"
        if not confirm(title + "".join(f"\n  - {n}" for n in notes), diff):
            outcome.declined.append(title)
            return outcome
        current = converted
        outcome.applied.append(title)
        converted_notes = [("pipeline", n) for n in notes[1:]]
    skip: set[str] = set()
    while True:
        plan = plan_migrations(current)
        outcome.reports = converted_notes + plan.reports
        fix = next((f for f in plan.fixes if f.component not in skip), None)
        if fix is None:
            break
        skip.add(fix.component)
        diff = "".join(difflib.unified_diff(dump_pipeline(current).splitlines(True),
                                            dump_pipeline(fix.data).splitlines(True),
                                            fromfile=f"{p} (before)", tofile=str(target)))
        description = fix.title + "".join(f"\n  - {d}" for d in fix.details)
        if confirm(description, diff):
            current = fix.data
            outcome.applied.append(fix.title)
        else:
            outcome.declined.append(fix.title)
    if outcome.applied:
        if target.resolve() == p.resolve():
            outcome.backup = p.with_name(p.name + ".bak")
            shutil.copy2(p, outcome.backup)
        target.write_text(dump_pipeline(current), encoding="utf-8")
        outcome.target = target
    return outcome
