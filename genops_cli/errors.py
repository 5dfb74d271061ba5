"""Errors with their exit codes (a contract scripts and cron jobs rely on; README "Output and exit codes").

0 success; 1 a pipeline run failed; 2 bad usage, config, pipeline file or input; 3 blocked by a budget or
compliance policy; 4 the ledger could not be written (records left in the spool).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_LEDGER = 4


class GenopsError(Exception):
    """Base class: `str(err)` is one line that names the file, field or flag and what would fix it."""

    exit_code = EXIT_USAGE


class UsageError(GenopsError):
    """Bad flag, config, pipeline file or input (exit 2)."""

    exit_code = EXIT_USAGE


class PipelineLoadError(UsageError):
    """The pipeline YAML could not be turned into a Haystack Pipeline."""


class InputError(UsageError):
    """The run inputs do not fit the pipeline."""


class ConfigError(UsageError):
    """`.genops.yml`, an environment variable or a flag has a bad value."""


class LedgerError(GenopsError):
    """The ledger could not be opened or written (exit 4); the run's records stay in the spool."""

    exit_code = EXIT_LEDGER


class BudgetExceededError(RuntimeError):
    """Raised by the Python API when an enforcing policy blocks a run. The message contains "budget limit"."""

    def __init__(self, message: str, reason_code: str = "BUDGET_EXCEEDED") -> None:
        super().__init__(message)
        self.reason_code = reason_code


class PolicyViolationError(RuntimeError):
    """Raised by the Python API when an enforcing compliance rule blocks a run."""

    def __init__(self, message: str, reason_code: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class RunCostCapReached(RuntimeError):
    """Raised inside the tracer to stop a pipeline before its next LLM call once `--max-cost` is reached."""
