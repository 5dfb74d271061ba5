"""Cross-platform locking: platform-specific code lives in one module (genops_cli/ledger/locking.py), the lock
goes through portalocker (flock on POSIX, LockFileEx on Windows), and every wait is bounded."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "genops_cli"
PLATFORM_MODULES = {"fcntl", "msvcrt", "portalocker", "win32file", "termios", "resource"}


def test_platform_specific_imports_live_in_the_locking_module_only():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name.split(".")[0] in PLATFORM_MODULES and path.name != "locking.py":
                    offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def test_genops_imports_without_fcntl():
    """What Windows looks like to genops: no fcntl module. The CLI and the ledger modules still import (the
    lock itself goes through portalocker, which picks the platform's primitive when a lock is taken)."""
    script = (
        "import sys\n"
        "sys.modules['fcntl'] = None\n"  # import fcntl -> ImportError, as on Windows
        "import genops_cli.cli.app, genops_cli.ledger.store, genops_cli.ledger.spool, genops_cli.ledger.locking\n"
        "import genops_cli.api\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_shared_locks_coexist_and_an_exclusive_wait_is_bounded(tmp_path):
    from genops_cli.ledger.locking import LockTimeout, hold_file_lock

    lock = tmp_path / "ledger.duckdb.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from genops_cli.ledger.locking import hold_file_lock\n"
        f"with hold_file_lock(Path({str(lock)!r}), exclusive=False):\n"
        "    print('held', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with hold_file_lock(lock, exclusive=False, timeout=1):  # readers share
            pass
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught, hold_file_lock(lock, exclusive=True, timeout=0.5):
            pass
        assert time.monotonic() - started < 30
        assert str(lock) in str(caught.value) and "GENOPS_LOCK_TIMEOUT" in str(caught.value)
        assert caught.value.exit_code == 4
    finally:
        holder.kill()
        holder.wait()
    with hold_file_lock(lock, exclusive=True, timeout=5):  # free again once the holder is gone
        pass


def test_lock_timeout_comes_from_env_then_config(tmp_path, monkeypatch):
    from genops_cli.config import load_settings
    from genops_cli.ledger.locking import lock_timeout

    assert lock_timeout() == 30
    config = tmp_path / "elsewhere.yml"  # not ./.genops.yml: load_settings() below must not find it
    config.write_text("limits:\n  lock_timeout_seconds: 7\n", encoding="utf-8")
    load_settings(str(config))
    assert lock_timeout() == 7
    monkeypatch.setenv("GENOPS_LOCK_TIMEOUT", "2.5")
    assert lock_timeout() == 2.5
    load_settings()  # no config file any more: the file's value is gone, the environment's stays
    monkeypatch.delenv("GENOPS_LOCK_TIMEOUT")
    assert lock_timeout() == 30
