"""Bounded reading of every file genops parses: pipeline YAML, inputs JSON/JSONL (stdin too), `.genops.yml`,
`--documents` and pricing overlays. Hostile files fail fast with one line naming the file and the limit:

    data = load_yaml_file("pipeline.yml", kind="pipeline", error=PipelineLoadError, tuples=True)
    data, node = parse_yaml_document(text, ".genops.yml", kind="config", error=ConfigError, strict_keys=True)
    value = parse_json(line, "inputs.jsonl:3", kind="inputs", error=InputError)

What is capped (defaults in `Limits`; each one raised by an environment variable or by `limits:` in
`.genops.yml`, the environment winning):
- size in bytes per kind of file, checked before reading (a 37 MB pipeline is refused at once, not parsed);
- YAML alias expansion: aliases count at their full expanded size, so a 500-byte "billion laughs" document is
  refused while it is being composed, before anything walks the data; recursive aliases are refused;
- nesting depth of YAML and JSON (deeper data would end in RecursionError in every walk over it);
- lock waits (`lock_timeout_seconds`), read by the ledger's lock.

Every decode problem (not UTF-8, malformed YAML/JSON, a number too long to convert) is the caller's
`error` class (a `UsageError`, exit 2) with a one-line message. With `strict_keys`, a key repeated in one
mapping is an error naming its line (config files use it: a duplicated key silently overrides the first).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from genops_cli.errors import UsageError

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Limits:
    """Caps on what genops reads. Byte sizes apply to one file (or stdin)."""

    pipeline_bytes: int = 4 * MiB
    inputs_bytes: int = 256 * MiB
    documents_bytes: int = 256 * MiB
    config_bytes: int = 1 * MiB
    overlay_bytes: int = 4 * MiB
    yaml_nodes: int = 500_000  # nodes after alias expansion
    yaml_aliases: int = 1_000
    depth: int = 100
    lock_timeout_seconds: float = 30.0


#: Limit name -> environment variable that overrides it (and the `.genops.yml` `limits:` key is the name).
ENV_VARS = {
    "pipeline_bytes": "GENOPS_MAX_PIPELINE_BYTES",
    "inputs_bytes": "GENOPS_MAX_INPUTS_BYTES",
    "documents_bytes": "GENOPS_MAX_DOCUMENTS_BYTES",
    "config_bytes": "GENOPS_MAX_CONFIG_BYTES",
    "overlay_bytes": "GENOPS_MAX_OVERLAY_BYTES",
    "yaml_nodes": "GENOPS_MAX_YAML_NODES",
    "yaml_aliases": "GENOPS_MAX_YAML_ALIASES",
    "depth": "GENOPS_MAX_DEPTH",
    "lock_timeout_seconds": "GENOPS_LOCK_TIMEOUT",
}
#: Depth beyond which Python's own recursion limit would be hit in walks over the data, whatever is configured.
HARD_MAX_DEPTH = 250

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_UNIT = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB,
         "g": 1024 * MiB, "gb": 1024 * MiB, "gib": 1024 * MiB}

_file_limits: dict[str, Any] = {}


def parse_limit(name: str, value: Any, where: str) -> int | float:
    """A limit's value: sizes accept 4MB / 512KiB / bytes; counts whole numbers; the lock timeout seconds."""
    from genops_cli.errors import ConfigError

    text = str(value).strip()
    if name == "lock_timeout_seconds":
        try:
            seconds = float(text.rstrip("s"))
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a number of seconds (e.g. 30)") from None
        if not 0 <= seconds <= 86_400:
            raise ConfigError(f"{where}: {value!r} must be between 0 and 86400 seconds")
        return seconds
    match = _SIZE.match(text) if name.endswith("_bytes") else re.match(r"^\s*(\d+)\s*()$", text)
    if not match or isinstance(value, bool):
        example = "4MB" if name.endswith("_bytes") else "1000"
        raise ConfigError(f"{where}: {value!r} is not a valid limit (e.g. {example})")
    number = int(float(match.group(1)) * _UNIT[(match.group(2) or "").lower()])
    if number <= 0:
        raise ConfigError(f"{where}: must be positive")
    if name == "depth" and number > HARD_MAX_DEPTH:
        raise ConfigError(f"{where}: at most {HARD_MAX_DEPTH} (deeper data cannot be processed safely)")
    return number


def configure_from_file(section: dict[str, Any], where: Callable[[str], str]) -> None:
    """Apply `.genops.yml`'s `limits:` section (validated here; `where(key)` names file and line)."""
    from genops_cli.errors import ConfigError

    known = [f.name for f in fields(Limits)]
    parsed: dict[str, Any] = {}
    for key, value in section.items():
        if key not in known:
            raise ConfigError(f"{where(f'limits.{key}')}: unknown limit; use one of {', '.join(known)}")
        parsed[key] = parse_limit(key, value, where(f"limits.{key}"))
    _file_limits.clear()
    _file_limits.update(parsed)


def reset_file_limits() -> None:
    _file_limits.clear()


def current_limits() -> Limits:
    """Defaults < `.genops.yml` `limits:` < environment variables."""
    values: dict[str, Any] = dict(_file_limits)
    for name, var in ENV_VARS.items():
        raw = os.environ.get(var)
        if raw:
            values[name] = parse_limit(name, raw, var)
    return replace(Limits(), **values) if values else Limits()


def _raise_hint(name: str) -> str:
    return f"raise it with {ENV_VARS[name]} or 'limits: {{{name}: ...}}' in .genops.yml"


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1024 * MiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


# --------------------------------------------------------------------------------------------------- reading


def read_text(path: str | Path, kind: str, error: type[UsageError] = UsageError, label: str | None = None) -> str:
    """The UTF-8 text of a file, refused before reading when larger than the `kind` limit."""
    label = label or str(path)
    return decode(read_bytes(path, kind, error, label), label, error)


def read_bytes(path: str | Path, kind: str, error: type[UsageError] = UsageError, label: str | None = None) -> bytes:
    """The bytes of a file, refused before reading when larger than the `kind` limit."""
    label = label or str(path)
    name = f"{kind}_bytes"
    limit = getattr(current_limits(), name)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise error(f"{label}: {_human(size)} exceeds the {kind} file size limit ({_human(limit)}); "
                        f"{_raise_hint(name)}")
        with p.open("rb") as fh:
            raw = fh.read(limit + 1)  # a file that grew after stat() is still capped
    except OSError as exc:
        raise error(f"{label}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise error(f"{label}: exceeds the {kind} file size limit ({_human(limit)}); {_raise_hint(name)}")
    return raw


def read_stdin(kind: str, error: type[UsageError] = UsageError, label: str = "stdin") -> str:
    """Standard input as UTF-8 text, capped like a file of `kind`."""
    name = f"{kind}_bytes"
    limit = getattr(current_limits(), name)
    stream = getattr(sys.stdin, "buffer", None)
    raw: bytes | str = stream.read(limit + 1) if stream is not None else sys.stdin.read(limit + 1)
    if len(raw) > limit:
        raise error(f"{label}: exceeds the {kind} size limit ({_human(limit)}); {_raise_hint(name)}")
    return raw if isinstance(raw, str) else decode(raw, label, error)


def decode(raw: bytes, label: str, error: type[UsageError] = UsageError) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise error(f"{label}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                    "save the file as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


# ------------------------------------------------------------------------------------------------------ JSON


def parse_json(text: str, source: str, kind: str = "inputs", error: type[UsageError] = UsageError,
               line: int | None = None) -> Any:
    """json.loads with the depth limit; any decode problem is `error` naming `source:line:column` (with `line`,
    the text is that line of a JSONL file)."""
    depth = current_limits().depth
    if line is not None:
        source = f"{source}:{line}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{source}: invalid JSON ({exc.msg} at column {exc.colno})" if line is not None else \
            f"{source}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})"
        raise error(where) from None
    except RecursionError:
        raise error(f"{source}: JSON nested deeper than the depth limit ({depth}); {_raise_hint('depth')}") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise error(f"{source}: invalid JSON ({_one_line(exc)})") from None
    check_parsed(value, source, error, text)
    return value


def check_parsed(value: Any, source: str, error: type[UsageError], text: str) -> None:
    """What json.loads lets through but nothing downstream can handle: too deep, or lone surrogates."""
    check_depth(value, source, error, text=text)
    if _SURROGATE_ESCAPE.search(text):
        _check_encodable(value, source, error)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_encodable(value: Any, source: str, error: type[UsageError]) -> None:
    """JSON may escape half of a surrogate pair (\\ud800); such a string cannot be written anywhere as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{source}: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff escape); "
                    "fix the text") from None


def check_depth(value: Any, source: str, error: type[UsageError] = UsageError, depth: int | None = None,
                text: str | None = None) -> None:
    """Refuse data nested deeper than `depth` (iterative: deep data cannot overflow this check)."""
    depth = depth if depth is not None else current_limits().depth
    if text is not None and text.count("[") + text.count("{") <= depth:
        return  # cannot be deeper than the number of brackets: skip the walk (the common case)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if level > depth:
            raise error(f"{source}: data nested deeper than the depth limit ({depth}); {_raise_hint('depth')}")
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list | tuple))


# ------------------------------------------------------------------------------------------------------ YAML


class _LimitHit(Exception):
    """Raised inside the composer; turned into the caller's error with the file name."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@functools.cache
def _parser_base() -> tuple[type, Callable[[Any, str], None]]:
    """libyaml scans and parses (fast) when PyYAML has it; composition stays in Python so it can be bounded."""
    try:
        from yaml._yaml import CParser

        def init_c(loader: Any, stream: str) -> None:
            CParser.__init__(loader, stream)

        return CParser, init_c
    except ImportError:  # pragma: no cover - pure-Python PyYAML
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class PyParser(Reader, Scanner, Parser):
            pass

        def init_py(loader: Any, stream: str) -> None:
            Reader.__init__(loader, stream)
            Scanner.__init__(loader)
            Parser.__init__(loader)

        return PyParser, init_py


@functools.cache
def _composer_class() -> type:
    from yaml.composer import Composer
    from yaml.events import AliasEvent

    class BoundedComposer(Composer):
        """Counts nodes as if every alias were expanded, tracks depth, refuses recursive aliases."""

        def _bound(self, limits: Limits) -> None:
            self._limits, self._nodes, self._aliases, self._depth = limits, 0, 0, 0
            self._sizes: dict[str, int] = {}  # anchor -> expanded node count of its node

        def compose_node(self, parent: Any, index: Any) -> Any:
            limits = self._limits
            event = self.peek_event()
            line = event.start_mark.line + 1
            if isinstance(event, AliasEvent):
                self._aliases += 1
                if self._aliases > limits.yaml_aliases:
                    raise _LimitHit(f"more than {limits.yaml_aliases} YAML aliases; {_raise_hint('yaml_aliases')}",
                                    line)
                size = self._sizes.get(event.anchor)
                if size is None and event.anchor in self.anchors:  # its node is still being composed
                    raise _LimitHit(f"recursive YAML alias *{event.anchor}", line)
                self._count(size or 0, line)
                return super().compose_node(parent, index)
            self._depth += 1
            if self._depth > limits.depth:
                raise _LimitHit(f"YAML nested deeper than the depth limit ({limits.depth}); {_raise_hint('depth')}",
                                line)
            start = self._nodes
            self._count(1, line)
            node = super().compose_node(parent, index)
            self._depth -= 1
            if getattr(event, "anchor", None) is not None:
                self._sizes[event.anchor] = self._nodes - start
            return node

        def _count(self, nodes: int, line: int) -> None:
            self._nodes += nodes
            if self._nodes > self._limits.yaml_nodes:
                raise _LimitHit(f"more than {self._limits.yaml_nodes} YAML nodes once aliases are expanded; "
                                f"{_raise_hint('yaml_nodes')}", line)

    return BoundedComposer


@functools.cache  # one class per flavour; limits are read per loader instance
def _loader_class(strict_keys: bool, tuples: bool) -> type:
    import yaml
    from yaml.constructor import ConstructorError, SafeConstructor
    from yaml.resolver import Resolver

    parser_class, init_parser = _parser_base()
    composer_class = _composer_class()

    class BoundedLoader(composer_class, parser_class, SafeConstructor, Resolver):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            init_parser(self, stream)
            composer_class.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._bound(current_limits())

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if strict_keys and isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _value in node.value:
                    if isinstance(key_node, yaml.ScalarNode):
                        key = self.construct_object(key_node)
                        line = key_node.start_mark.line + 1
                        if key in seen:
                            raise _LimitHit(f"duplicate key {key!r} (first at line {seen[key]}); keep one", line)
                        seen[key] = line
            return super().construct_mapping(node, deep=deep)

    if tuples:
        def construct_tuple(loader: Any, node: Any) -> tuple[Any, ...]:
            if not isinstance(node, yaml.SequenceNode):
                raise ConstructorError(None, None, "!!python/tuple needs a sequence", node.start_mark)
            return tuple(loader.construct_sequence(node))

        # Pipeline.dumps() writes tuples with this tag (Haystack's own loader reads it); other python/* tags
        # stay refused.
        BoundedLoader.add_constructor("tag:yaml.org,2002:python/tuple", construct_tuple)
    return BoundedLoader


def parse_yaml_document(text: str, source: str, kind: str = "pipeline", error: type[UsageError] = UsageError,
                        strict_keys: bool = False, tuples: bool = False) -> tuple[Any, Any]:
    """(data, root node) of one YAML document, bounded by the current limits. The node (with line marks) lets
    callers name the line of a bad key."""
    import yaml

    loader = _loader_class(strict_keys, tuples)(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _LimitHit as exc:
        where = f"{source}:{exc.line}" if exc.line else source
        raise error(f"{where}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = _one_line(exc.problem or exc.context or "invalid YAML")
        column = f" at column {mark.column + 1}" if mark else ""
        raise error(f"{where}: malformed YAML ({problem}{column}); fix the syntax at that line") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: malformed YAML ({_one_line(exc)})") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply; {_raise_hint('depth')}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. !!int with 10,000 digits, a bad !!timestamp
        raise error(f"{source}: {kind} YAML has a value that cannot be read ({_one_line(exc)})") from None
    finally:
        loader.dispose()
    return data, node


def parse_yaml(text: str, source: str, kind: str = "pipeline", error: type[UsageError] = UsageError,
               strict_keys: bool = False, tuples: bool = False) -> Any:
    return parse_yaml_document(text, source, kind, error, strict_keys, tuples)[0]


def load_yaml_file(path: str | Path, kind: str, error: type[UsageError] = UsageError, strict_keys: bool = False,
                   tuples: bool = False) -> Any:
    """Read (size-capped) and parse (bounded) a YAML file."""
    return parse_yaml(read_text(path, kind, error), str(path), kind, error, strict_keys, tuples)


def _one_line(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value)).strip()[:300]
