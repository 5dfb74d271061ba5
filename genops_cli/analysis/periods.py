"""Time windows for reports: `--since 24h|7d|2w|30m` or `--from DATE [--to DATE]`, as naive-UTC bounds.

    period = parse_period(since="7d")                          # the last 7 days, up to now
    period = parse_period(from_="2026-05-01", to="2026-05-31")  # whole days: to is inclusive
    period.start, period.end                                    # naive UTC datetimes (the ledger stores naive UTC)
    period.to_json()                                            # {"from": ..., "to": ..., "label": ...}

Every bad value raises `UsageError` naming the flag and the accepted forms (exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from genops_cli.errors import UsageError

_SINCE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Period:
    """A half-open window [start, end) in naive UTC. `start=None` means since the first record."""

    start: datetime | None
    end: datetime
    label: str

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat() + "Z" if self.start else None,
            "to": self.end.isoformat() + "Z",
            "label": self.label,
        }

    def describe(self) -> str:
        start = self.start.strftime("%Y-%m-%d %H:%M") if self.start else "the first record"
        return f"{self.label} ({start} to {self.end.strftime('%Y-%m-%d %H:%M')} UTC)"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def parse_duration(value: str, flag: str = "--since") -> timedelta:
    """'24h' -> 24 hours; units m (minutes), h, d, w."""
    match = _SINCE.match(value or "")
    if not match or len(match.group(1)) > 12 or int(match.group(1)) <= 0:
        raise UsageError(f"{flag} {value[:40]!r}: use a positive number with a unit, e.g. 30m, 24h, 7d or 2w")
    try:
        return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    except OverflowError:
        raise UsageError(f"{flag} {value!r}: window out of range; use at most {timedelta.max.days} days") from None


def window_before(now: datetime, span: timedelta, flag: str, value: Any) -> datetime:
    """`now - span`, or a usage error naming the flag when the window would start before year 1."""
    try:
        return now - span
    except OverflowError:
        raise UsageError(f"{flag} {value}: window starts before year 1; use a shorter window") from None


def parse_when(value: str, flag: str, end_of_day: bool = False) -> datetime:
    """A date (YYYY-MM-DD) or an ISO 8601 datetime, as naive UTC. With `end_of_day`, a bare date means the end
    of that day (so `--to 2026-05-31` includes the 31st)."""
    text = (value or "").strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except OverflowError:
        raise UsageError(f"{flag} {value!r}: out of range; use a date before 9999-12-31") from None
    except ValueError:
        raise UsageError(f"{flag} {value!r}: use a date YYYY-MM-DD or an ISO datetime like 2026-05-01T12:00") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise UsageError(f"{flag} {value!r}: out of range once converted to UTC") from None
    return parsed


def parse_period(since: str | None = None, from_: str | None = None, to: str | None = None,
                 default: str | None = "30d", now: datetime | None = None) -> Period:
    """The window the flags describe; `default` (a --since value, or None for all history) when none is given."""
    now = now or _now()
    if since and (from_ or to):
        raise UsageError("--since cannot be combined with --from/--to; use one or the other")
    if from_ or to:
        start = parse_when(from_, "--from") if from_ else None
        end = parse_when(to, "--to", end_of_day=True) if to else now
        if start is not None and start >= end:
            raise UsageError(f"--from {from_} is not before --to {to}; swap them")
        label = f"{from_ or 'start'} to {to or 'now'}"
        return Period(start, end, label)
    if since is None and default is None:
        return Period(None, now, "all time")
    value = since or default or ""
    start = window_before(now, parse_duration(value, "--since"), "--since", value)
    return Period(start, now, f"last {value.strip()}")


def period_from_hours(hours: float, now: datetime | None = None) -> Period:
    """The Python API's `time_period_hours=24` as a Period."""
    if hours <= 0:
        raise UsageError(f"time_period_hours={hours}: must be positive")
    now = now or _now()
    try:
        span = timedelta(hours=hours)
    except OverflowError:
        raise UsageError(f"time_period_hours={hours}: out of range") from None
    return Period(window_before(now, span, "time_period_hours", hours), now, f"last {hours:g}h")
