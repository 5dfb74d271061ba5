"""stderr logging for people and for cron: text or one JSON object per line.

    configure_logging(settings.log_level, fmt="json")     # genops' and Haystack's loggers -> stderr
    events = EventLog(fmt="json", quiet=False)
    events.info("run.finished", "line 3: ok $0.000450", run_id=..., line=3, cost="0.000450")
    # {"ts": "2026-05-01T12:00:00.123Z", "level": "info", "event": "run.finished", "message": "...", "run_id": ...}

`GENOPS_LOG_LEVEL` (settings.log_level) sets the verbosity of genops' own diagnostic logging and of Haystack's
logging. Run events (progress, finished runs, retries, the batch summary) are the command's output on stderr:
`--quiet` silences them, warnings and errors are always shown.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

from genops_cli.redact import RedactingFilter, install_log_redaction, redact, redact_obj

_LOGGERS = ("genops", "genops_cli", "haystack")
_HANDLER_NAME = "genops-stderr"


def _ts(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a Z (now, unless given)."""
    return (moment or datetime.now(timezone.utc)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, event (the logger name unless given), message, extras."""

    _STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _ts(datetime.fromtimestamp(record.created, timezone.utc)),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key != "event" and not key.startswith("_"):
                doc[key] = _jsonable(value)
        if record.exc_info and record.exc_info[1] is not None:
            doc["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from genops_cli.safe_output import terminal_text

        text = terminal_text(record.getMessage())  # control characters from user strings shown as escapes
        if record.levelno >= logging.ERROR:
            return f"error: {text}"
        if record.levelno >= logging.WARNING:
            return f"warning: {text}"
        return f"{record.levelname.lower()}: {record.name}: {text}"


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever sys.stderr is when a record is emitted: a record logged after the stream at
    set-up was replaced or closed (a test runner's capture, an application that swaps stderr, the recorder's flush
    at interpreter exit) still reaches the current stderr."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str | int = "WARNING", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Route genops' and Haystack's loggers to stderr at `level`, as text or JSON lines (idempotent)."""
    numeric = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())  # a library may log a request or an error body with the key in it
    install_log_redaction()  # also records printed by other handlers (third-party loggers, the last resort)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        # Third-party chatter (Haystack's warnings, Python warnings from libraries) only when verbose.
        logger.setLevel(numeric if name != "haystack" or numeric <= logging.INFO else max(numeric, logging.ERROR))
        logger.propagate = False
    logging.captureWarnings(True)
    py_warnings = logging.getLogger("py.warnings")
    for old in [h for h in py_warnings.handlers if h.get_name() == _HANDLER_NAME]:
        py_warnings.removeHandler(old)
    py_warnings.addHandler(handler)
    py_warnings.setLevel(numeric if numeric <= logging.INFO else logging.ERROR)
    py_warnings.propagate = False


class EventLog:
    """The command's own stderr lines: plain text, or JSON objects for log collectors. Thread-safe."""

    def __init__(self, fmt: str = "text", quiet: bool = False, stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.quiet = quiet
        self._stream = stream
        self._lock = threading.Lock()

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr  # resolved late: test runners swap sys.stderr

    def _write(self, level: str, event: str, message: str, fields: dict[str, Any]) -> None:
        message = redact(message) or ""
        fields = redact_obj(fields)
        if self.fmt == "json":
            doc = {"ts": _ts(), "level": level, "event": event, "message": message}
            doc.update({k: _jsonable(v) for k, v in fields.items()})
            line = json.dumps(doc, ensure_ascii=False)
        else:
            from genops_cli.safe_output import terminal_text

            message = terminal_text(message)  # a tenant or file name cannot drive the terminal
            line = message if level == "info" else f"{level}: {message}"
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def info(self, event: str, message: str, **fields: Any) -> None:
        if not self.quiet:
            self._write("info", event, message, fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        self._write("warning", event, message, fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        self._write("error", event, message, fields)
