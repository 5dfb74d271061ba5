"""Harness for the hostile-input suites: run one genops invocation, classify it, count it.

Every case must end with a documented exit code, no traceback, and within a time bound (a hang is detected, the
case fails). In-process cases run through typer's CliRunner under an interval timer; cases that could burn a CPU
in C code (huge or explosive files) run in a subprocess with a timeout.

    outcome = invoke(["run", str(path), "--simulate"], expect={2})
    outcome.stderr, outcome.exit_code

The tally (cases, hangs, tracebacks) is printed by `summary()`; run a suite with `-s` to see it:
    .venv/bin/python -m pytest -q -s tests/test_hostile_inputs.py tests/test_hostile_fuzz.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TALLY: Counter[str] = Counter()
#: Generous: a case that needs this long is a hang, not a slow machine (caps answer in milliseconds).
HANG_SECONDS = 20.0


class Hang(Exception):
    """Raised by the interval timer inside a case that did not finish in time."""


@dataclass
class Outcome:
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    hang: bool = False
    traceback: str | None = None


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no answer after {HANG_SECONDS} s")


def invoke(args: list[str], input: str | bytes | None = None, env: dict[str, str] | None = None,
           expect: set[int] | None = None) -> Outcome:
    """Run `genops ARGS` in-process; assert the exit code is in `expect` (default: 2), no traceback, no hang."""
    from typer.testing import CliRunner

    from genops_cli.cli.app import app

    runner = CliRunner()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    start = time.monotonic()
    try:
        result = runner.invoke(app, args, input=input, env=env, catch_exceptions=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.monotonic() - start
    exc = result.exception
    hang = isinstance(exc, Hang)
    traceback = None
    if exc is not None and not isinstance(exc, SystemExit) and not hang:
        import traceback as tb

        frames = tb.extract_tb(result.exc_info[2])[-3:]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
        traceback = f"{type(exc).__name__}: {exc} at {where}"
    text = result.stdout + result.stderr
    if "Traceback (most recent call last)" in text:
        traceback = traceback or text[text.index("Traceback"):][:2000]
    return _check(Outcome(result.exit_code, result.stdout, result.stderr, seconds, hang, traceback), args,
                  expect)


def invoke_subprocess(args: list[str], input: bytes | None = None, env: dict[str, str] | None = None,
                      expect: set[int] | None = None, timeout: float = HANG_SECONDS) -> Outcome:
    """Run `genops ARGS` as a process (for inputs that could spin in C code), killed after `timeout`."""
    exe = Path(sys.executable).with_name("genops")
    start = time.monotonic()
    try:
        proc = subprocess.run([str(exe), *args], input=input, capture_output=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as exc:
        out = Outcome(None, (exc.stdout or b"").decode("utf-8", "replace"),
                      (exc.stderr or b"").decode("utf-8", "replace"), time.monotonic() - start, hang=True)
        return _check(out, args, expect)
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    traceback = stderr[stderr.index("Traceback"):][:2000] if "Traceback (most recent call last)" in stderr else None
    return _check(Outcome(proc.returncode, stdout, stderr, time.monotonic() - start, traceback=traceback), args,
                  expect)


def _check(outcome: Outcome, args: list[str], expect: set[int] | None) -> Outcome:
    TALLY["cases"] += 1
    TALLY["hangs"] += outcome.hang
    TALLY["tracebacks"] += outcome.traceback is not None
    shown = " ".join(str(a) for a in args)[:300]
    assert not outcome.hang, f"hang: genops {shown}"
    assert outcome.traceback is None, f"traceback: genops {shown}\n{outcome.traceback}"
    expected = expect if expect is not None else {2}
    assert outcome.exit_code in expected, (
        f"genops {shown}: exit {outcome.exit_code}, expected {sorted(expected)}\n{outcome.stderr[-1500:]}")
    if outcome.exit_code == 2:  # every usage error, genops' own or click's, is one line
        errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, f"genops {shown}: expected one error line\n{outcome.stderr[-1500:]}"
    return outcome


def summary(name: str) -> str:
    line = (f"hostile[{name}]: cases={TALLY['cases']} hangs={TALLY['hangs']} tracebacks={TALLY['tracebacks']}")
    print("\n" + line, file=sys.stderr)
    return line
