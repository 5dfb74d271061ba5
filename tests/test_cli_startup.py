"""Start-up of the command line: `genops --help`, `--version` and `genops COMMAND --help` build only what they
show. The top-level help lists every command from the summaries in cli/app.py without importing any command
module, and must read exactly as the help of the fully built tree; what each of these imports is checked by module
name (timing lives in benchmarks/startup.py)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs genops in a fresh interpreter and prints the modules it imported beyond `import typer, rich`, the floor of
# any typer application.
_IMPORTS = """
import json, sys
import typer, rich
floor = set(sys.modules)
from genops_cli.cli.app import main
sys.argv = ["genops", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(set(sys.modules) - floor)), file=sys.stderr)
"""

# Never needed to show help: typer's markdown and traceback renderers, pydantic (typer's option coercion), the
# library's heavy dependencies, and stdlib packages that only real work needs.
_HEAVY = ("pydantic", "pydantic_core", "markdown_it", "pygments", "rich.markdown", "rich.traceback", "rich.syntax",
          "rich.pretty", "haystack", "duckdb", "genai_prices", "psycopg", "yaml", "tiktoken", "opentelemetry",
          "importlib.metadata", "email", "logging", "asyncio", "http", "ssl", "socket", "zipfile", "tempfile")


def _imports(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TERMINAL_WIDTH")}
    proc = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in _HEAVY))


def _outside_floor(modules: set[str]) -> list[str]:
    """Modules that are neither genops, rich, typer nor the standard library (a new third-party dependency)."""
    allowed = {"genops_cli", "rich", "typer"} | set(sys.stdlib_module_names)
    return sorted(m for m in modules if m.split(".")[0] not in allowed)


def test_top_level_help_imports_only_the_root_and_typers_rich_renderer():
    modules = _imports("--help")
    assert sorted(m for m in modules if m.startswith("genops_cli")) == [
        "genops_cli", "genops_cli.cli", "genops_cli.cli.app", "genops_cli.cli.root"]
    assert _heavy(modules) == []
    assert _outside_floor(modules) == []
    assert {"typer.rich_utils", "rich.console", "rich.table", "rich.panel"} <= modules  # rendered by typer + rich


def test_version_imports_no_command_and_no_renderer():
    modules = _imports("--version")
    assert sorted(m for m in modules if m.startswith("genops_cli")) == [
        "genops_cli", "genops_cli.cli", "genops_cli.cli.app", "genops_cli.cli.root", "genops_cli.versions"]
    assert not {"typer.rich_utils", "rich.console", "pydantic"} & modules
    assert _outside_floor(modules) == []


@pytest.mark.parametrize("args, module", [
    (("run", "--help"), "genops_cli.cli.run_cmd"),
    (("budget", "--help"), "genops_cli.cli.budget_cmd"),
    (("ledger", "hold", "set", "--help"), "genops_cli.cli.ledger_cmd"),
])
def test_command_help_imports_that_command_only(args: tuple[str, ...], module: str):
    modules = _imports(*args)
    commands = sorted(m for m in modules if m.startswith("genops_cli.cli.") and m.endswith("_cmd"))
    assert commands == [module]
    assert _heavy(modules) == []
    assert _outside_floor(modules) == []


def test_summaries_are_the_first_paragraph_of_each_commands_help():
    import typer

    from genops_cli.cli.app import COMMANDS, app

    group = typer.main.get_command(app)
    assert list(group.list_commands(None)) == [entry.name for entry in COMMANDS]  # type: ignore[arg-type]
    for entry in COMMANDS:
        command = group.commands[entry.name]  # type: ignore[attr-defined]
        first = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].strip()
        assert first == entry.summary, entry.name


_FULL_TREE_HELP = """
import sys, typer
from genops_cli.cli.app import app
group = typer.main.get_command(app)
for name in list(group.commands):
    group.commands[name]  # builds the command
group.main(["--help"], prog_name="genops")
"""


@pytest.mark.parametrize("colour", [False, True])
def test_top_level_help_reads_as_the_fully_built_trees(colour: bool):
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERMINAL_WIDTH"] = "100"
    if colour:
        env["FORCE_COLOR"] = "1"
    else:
        env["NO_COLOR"] = "1"
    genops = str(Path(sys.executable).with_name("genops"))
    lazy = subprocess.run([genops, "--help"], capture_output=True, text=True, env=env, timeout=120)
    full = subprocess.run([sys.executable, "-c", _FULL_TREE_HELP], capture_output=True, text=True, env=env,
                          timeout=120)
    assert lazy.returncode == full.returncode == 0, lazy.stderr + full.stderr
    assert "Exit codes" in lazy.stdout and "budget" in lazy.stdout
    assert lazy.stdout == full.stdout


def test_rich_markdown_still_imports_after_the_help_renderer():
    """The renderer's stand-ins leave sys.modules: a later import of rich.markdown gets the real module."""
    code = ("import sys\n"
            "from genops_cli.cli.root import import_help_renderer\n"
            "utils = import_help_renderer()\n"
            "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
            "from rich.markdown import Markdown\n"
            "from rich.traceback import Traceback\n"
            "assert isinstance(utils.Markdown('# x'), Markdown)\n"
            "assert utils.Traceback.from_exception is not None and Traceback.__module__ == 'rich.traceback'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
