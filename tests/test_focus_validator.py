"""The FOCUS export checked by the FinOps Foundation's own validator (PyPI `focus-validator`), for every FOCUS
version that both genops exports and the validator ships rules for (the others skip, naming the versions it has).

The validator needs Python >= 3.12 and Debian 12 has 3.11: `.ci/focus-validator.sh` (run by `.ci/run`) builds a
minimal Debian trixie root with Python 3.13 through debootstrap, installs the validator there and writes
`.venv-focus/bin/python`, which runs it through chroot with /tmp and the repo bind-mounted. GENOPS_FOCUS_PYTHON
(or that wrapper) is the interpreter; without either this test is skipped.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import cli
from ledger_factory import at, make_run, record

from genops_cli.analysis.focus import FOCUS_VERSIONS

ROOT = Path(__file__).resolve().parent.parent
#: The validator reports both branches of an OR composite; only the branch that does not apply may fail.
#: InvoiceId-C-003-C = (InvoiceId-C-004-C "null when there is no invoice") OR (InvoiceId-C-005-C "not null when
#: there is an invoice"): every row of a genops bill belongs to an invoice, so C-005 holds and C-004 cannot.
UNCHOSEN_BRANCHES = {"InvoiceId-C-004-C": "InvoiceId-C-003-C"}


def _validator_python() -> str | None:
    candidate = os.environ.get("GENOPS_FOCUS_PYTHON") or str(ROOT / ".venv-focus" / "bin" / "python")
    return candidate if Path(candidate).exists() else None


pytestmark = pytest.mark.skipif(_validator_python() is None,
                                reason="focus-validator needs Python >= 3.12: set GENOPS_FOCUS_PYTHON, or run "
                                       "`bash .ci/focus-validator.sh` (as root) to build one in a Debian trixie "
                                       "root and write .venv-focus/bin/python")

# The validator reads its currency list from focus_validator/rules/ relative to the working directory and writes
# its log there: run it in a scratch directory that links its package under that name.
_RUN_VALIDATOR = ("import os, sys, focus_validator; "
                  "os.symlink(os.path.dirname(focus_validator.__file__), 'focus_validator'); "
                  "from focus_validator.main import main; sys.exit(main())")


@functools.cache
def _shipped_rule_versions() -> list[str]:
    """FOCUS versions the validator has rules for without downloading (its rules/model-<version>.json files)."""
    python = _validator_python()
    assert python is not None
    out = subprocess.run([python, "-c", "import json, os, focus_validator; print(json.dumps(sorted(os.listdir("
                          "os.path.join(os.path.dirname(focus_validator.__file__), 'rules')))))"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [m.group(1) for name in json.loads(out.stdout) if (m := re.fullmatch(r"model-([\d.]+)\.json", name))]


def _validate(path: Path, version: str) -> tuple[dict[str, str], str]:
    python = _validator_python()
    assert python is not None
    workdir = path.parent / "validator"
    workdir.mkdir()
    out = subprocess.run(
        [python, "-c", _RUN_VALIDATOR, "--data-file", str(path), "--validate-version", version, "--block-download"],
        capture_output=True, text=True, cwd=workdir, timeout=600)
    text = out.stdout + out.stderr
    results = {m.group(1): m.group(2) for m in re.finditer(r"^\S+ ([A-Za-z]+-[A-Z]-\d{3}-[A-Z]): (PASS|FAIL|SKIPPED)",
                                                             text, re.MULTILINE)}
    assert results, text[-2000:]
    return results, text


@pytest.mark.parametrize("perspective", ["resale", "own"])
@pytest.mark.parametrize("version", FOCUS_VERSIONS)
def test_focus_export_passes_the_focus_validator(tmp_path, version, perspective):
    shipped = _shipped_rule_versions()
    # The validator matches "1.2" to its newest "1.2.x" rules; others it would download from GitHub (no internet).
    if not any(v == version or v.startswith(version + ".") for v in shipped):
        pytest.skip(f"focus-validator ships no FOCUS {version} rules (it has {', '.join(shipped)})")
    record(
        make_run("acme", at("2026-05-03", 9), [{"model": "gpt-4o-mini", "input": 1200, "cache_read": 200,
                                                 "output": 300}, {"model": "gpt-4o", "input": 500, "output": 50}]),
        make_run("acme", at("2026-05-04"), [{"model": "claude-3-haiku-20240307", "provider": "anthropic",
                                             "input": 999, "cache_write": 100, "output": 77}]),
        make_run("acme", at("2026-05-05"), [{"model": "gpt-9-ultra", "input": 10, "output": 10}]),  # unpriced
    )
    out = tmp_path / "acme.focus.csv"
    result = cli("report", "--tenant", "acme", "--period", "2026-05", "--format", "focus", "--focus-version", version,
                 "--focus-perspective", perspective, "--issuer", "Acme AI Platform", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "x_Unpriced" in result.stderr  # the export's summary says unpriced calls are flagged
    results, text = _validate(out, version)
    failed = {rule for rule, status in results.items() if status == "FAIL"}
    assert failed <= set(UNCHOSEN_BRANCHES), text[-3000:]
    for branch in failed:
        assert results[UNCHOSEN_BRANCHES[branch]] == "PASS"
    assert sum(1 for status in results.values() if status == "PASS") > 100
