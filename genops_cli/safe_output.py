"""Output safety for files people open in other tools: spreadsheets, Markdown viewers, shared folders.

- CSV: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a single quote
  (the OWASP rule against CSV/formula injection), so a tenant named `=HYPERLINK(...)` is text, not a live
  formula. Numbers (`-0.25`, `+3`, `1e-5`) are left alone: they cannot be formulas. Every CSV genops writes goes
  through `csv_writer` / `CsvDictWriter`.
- Markdown: `markdown_text` escapes HTML and the characters that would break a table or start a link.
- File names from user strings (`report --all-tenants`): `tenant_file_stem` keeps readable names and adds a
  short hash whenever it had to change the name, so distinct tenants never share a file.
- Report files (`--out`): `write_output_file` writes atomically and replaces regular files only.
- Terminals: `terminal_text` shows control characters in user strings (ESC, CR, backspace, C1 controls, bidi
  overrides) as visible escapes (`\\x1b`, `\\u202e`), so a tenant named `\\x1b]0;...` cannot retitle, clear or
  recolour the terminal that prints a table, an error line, a CSV or Markdown report. The CLI's consoles apply it
  to every piece of text they print (not to the styling they add themselves).

    writer = csv_writer(fh)              # like csv.writer, cells neutralised
    writer.writerow(["=1+1", "-0.5"])    # -> '=1+1,-0.5
"""

from __future__ import annotations

import csv
import hashlib
import html
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


#: C0 controls but tab and newline, DEL, C1 controls, and the bidi embedding/override/isolate characters that
#: reorder what a terminal shows ("Trojan source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_text(text: str, one_line: bool = False) -> str:
    """`text` with control characters shown as escapes (`\\x1b`, `\\u202e`, `\\r`) instead of acted on by a
    terminal. Tabs and newlines stay, unless `one_line` (an error line): then newlines become `\\n` as well."""
    pattern = _CONTROL_OR_NEWLINE if one_line else _CONTROL
    return pattern.sub(_visible, text) if pattern.search(text) else text


def csv_cell(value: Any) -> Any:
    """`value` made safe to open in a spreadsheet (strings only; numbers are returned unchanged), with control
    characters shown as escapes (`terminal_text`): CSV is printed to terminals too."""
    if isinstance(value, str):
        value = terminal_text(value)
        if value.startswith(_FORMULA_START) and not _NUMBER.match(value):
            return "'" + value
    return value


class _SafeWriter:
    """csv.writer with every cell passed through `csv_cell`."""

    def __init__(self, fh: Any, **kwargs: Any) -> None:
        kwargs.setdefault("lineterminator", "\n")
        self._writer = csv.writer(fh, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(fh: Any, **kwargs: Any) -> _SafeWriter:
    return _SafeWriter(fh, **kwargs)


class CsvDictWriter(csv.DictWriter):
    """csv.DictWriter with every cell passed through `csv_cell`."""

    def __init__(self, fh: Any, fieldnames: Any, **kwargs: Any) -> None:
        kwargs.setdefault("lineterminator", "\n")
        super().__init__(fh, fieldnames, **kwargs)

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: csv_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)


# Enough to keep a user string from making links, images, code spans, emphasis or breaking a table row
# (HTML, autolinks and raw tags are already escaped by html.escape).
_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def markdown_text(value: Any) -> str:
    """A user string as inert Markdown text: HTML escaped, Markdown syntax backslash-escaped, one line."""
    text = html.escape(str(value if value is not None else ""), quote=True)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return terminal_text(re.sub(r"[\r\n]+", " ", text))


def write_output_file(path: Path, text: str, flag: str = "--out") -> None:
    """Write a report atomically (temp file, rename): a cron job never leaves a half-written invoice behind.
    Only regular files are replaced: a directory or a device (`/dev/full`) is refused, since a rename over a
    device node would replace the device. Any OSError is a one-line usage error naming the flag."""
    from genops_cli.errors import UsageError

    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {path}: not a regular file (a directory or a device); pass a file name")
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a read-only folder
        raise UsageError(f"{flag} {path}: cannot write ({exc.strerror or exc}); choose another place") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def tenant_file_stem(tenant: str, max_length: int = 80, force_hash: bool = False) -> str:
    """A file-name stem for a tenant id: the id itself when it is already a safe name; otherwise a readable slug
    plus 8 hex characters of its SHA-256, so `globex/eu` and `globex_eu` get different files."""
    slug = _UNSAFE_NAME.sub("_", tenant).strip("._-")[:max_length] or "tenant"
    if slug == tenant and slug.lower() not in _RESERVED and not force_hash:
        return slug
    digest = hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}"


def distinct_file_stems(tenants: Iterable[str]) -> dict[str, str]:
    """tenant -> stem, distinct even on case-insensitive file systems (`Acme` and `acme` both get a hash)."""
    tenants = list(dict.fromkeys(tenants))
    stems = {t: tenant_file_stem(t) for t in tenants}
    by_folded: dict[str, list[str]] = {}
    for tenant, stem in stems.items():
        by_folded.setdefault(stem.casefold(), []).append(tenant)
    for group in by_folded.values():
        if len(group) > 1:
            for tenant in group:
                stems[tenant] = tenant_file_stem(tenant, force_hash=True)
    if len({s.casefold() for s in stems.values()}) != len(stems):  # only with a SHA-256 prefix collision
        raise ValueError("two tenants map to the same report file name")
    return stems
