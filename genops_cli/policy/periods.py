"""Budget periods on calendar boundaries in a configured timezone (daily, weekly, monthly).

Every computation takes `now` explicitly, so resets can be tested around midnight and DST changes:

    w = window("daily", now=datetime(2026, 3, 29, 22, 30, tzinfo=timezone.utc), tz="Europe/Berlin")
    w.key                      # '2026-03-30' (00:30 local, after the spring-forward night)
    w.start, w.end             # aware UTC datetimes: [start, end)
    elapsed_fraction(w, now)   # share of the period's real duration that has passed (23 h days count as 23 h)

Weeks are ISO weeks (Monday 00:00 local); keys are `YYYY-MM-DD`, `YYYY-Www`, `YYYY-MM`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

PERIODS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Window:
    """One period instance: [start, end) in UTC, and the key alerts are de-duplicated on."""

    period: str
    key: str
    start: datetime
    end: datetime
    timezone: str

    def contains(self, moment: datetime) -> bool:
        return self.start <= _aware(moment) < self.end

    @property
    def start_naive(self) -> datetime:
        """The ledger stores naive UTC timestamps."""
        return self.start.replace(tzinfo=None)

    @property
    def end_naive(self) -> datetime:
        return self.end.replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """Start of `day` in `zone`, as UTC. Midnight that does not exist (a DST gap at 00:00, as in some zones)
    resolves to the first instant of the day that does."""
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    as_utc = local.astimezone(timezone.utc)
    back = as_utc.astimezone(zone)
    if back.date() < day:  # fell into a gap: move to the transition instant
        as_utc += timedelta(hours=1)
    return as_utc


def window(period: str, now: datetime, tz: str = "UTC") -> Window:
    """The `period` window that contains `now` (naive datetimes are taken as UTC)."""
    if period not in PERIODS:
        raise ValueError(f"unknown budget period {period!r}; use one of {', '.join(PERIODS)}")
    zone = ZoneInfo(tz)
    local_day = _aware(now).astimezone(zone).date()
    if period == "daily":
        first, nxt = local_day, local_day + timedelta(days=1)
        key = first.isoformat()
    elif period == "weekly":
        first = local_day - timedelta(days=local_day.weekday())
        nxt = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        key = f"{year}-W{week:02d}"
    else:
        first = local_day.replace(day=1)
        nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        key = f"{first.year}-{first.month:02d}"
    return Window(period=period, key=key, start=_local_midnight(first, zone), end=_local_midnight(nxt, zone),
                  timezone=tz)


def elapsed_fraction(w: Window, now: datetime) -> float:
    """How much of the window's real duration has passed at `now` (0..1)."""
    total = (w.end - w.start).total_seconds()
    done = (_aware(now) - w.start).total_seconds()
    return min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
