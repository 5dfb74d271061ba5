"""Run inputs: a JSON object is one run, JSONL is a batch (one run per line), `-` reads stdin.

Each run's data is what `Pipeline.run` takes: `{"component": {"socket": value}}` or flat `{"socket": value}`.
Values are coerced to the socket's type where JSON cannot express it (ChatMessage, Document lists), and
missing or unknown inputs are reported with the file, line and field.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genops_cli.errors import InputError
from genops_cli.safe_load import check_parsed, parse_json, read_stdin, read_text


@dataclass
class RunInput:
    data: dict[str, Any]
    line: int | None  # 1-based line in a JSONL batch; None for a single JSON object
    source: str
    raw: str  # the line's text, for deterministic batch run ids

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source


def read_inputs(path: str | None, quick: list[str] | None = None) -> list[RunInput]:
    """Parse `--inputs FILE|-` and `--input component.socket=value` flags into runs."""
    runs: list[RunInput] = []
    if path:
        source = "stdin" if path == "-" else path
        if path == "-":
            text = read_stdin("inputs", InputError, label="--inputs - (stdin)")
        else:
            p = Path(path)
            if not p.exists():
                raise InputError(f"--inputs {path}: file not found")
            if p.is_dir():
                raise InputError(f"--inputs {path}: is a directory; pass a JSON or JSONL file")
            text = read_text(p, "inputs", InputError, label=f"--inputs {path}")
        runs = parse_inputs_text(text, source, jsonl=path.endswith(".jsonl"))
    if quick:
        extra = parse_quick_inputs(quick)
        if not runs:
            runs = [RunInput(data=extra, line=None, source="--input", raw=json.dumps(extra, sort_keys=True))]
        else:
            for run in runs:
                _deep_merge(run.data, extra)
    return runs


def _deep_merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def parse_inputs_text(text: str, source: str, jsonl: bool = False) -> list[RunInput]:
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{source}: empty inputs; give a JSON object (one run) or JSONL (one run per line)")
    if not jsonl:
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            if "\n" in stripped and exc.msg == "Extra data":
                jsonl = True
            else:
                raise InputError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
        except (RecursionError, ValueError):
            parse_json(stripped, source, "inputs", InputError)  # raises the one-line error
            raise
        else:
            check_parsed(data, source, InputError, stripped)
            if not isinstance(data, dict):
                raise InputError(f"{source}: inputs must be a JSON object (or JSONL of objects), got "
                                 f"{type(data).__name__}")
            return [RunInput(data=data, line=None, source=source, raw=json.dumps(data, sort_keys=True))]
    runs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        data = parse_json(line, source, "inputs", InputError, line=number)
        if not isinstance(data, dict):
            raise InputError(f"{source}:{number}: each line must be a JSON object")
        runs.append(RunInput(data=data, line=number, source=source, raw=line.strip()))
    return runs


def parse_quick_inputs(items: list[str]) -> dict[str, Any]:
    """`--input prompt_builder.question="What is X?"` -> {"prompt_builder": {"question": "What is X?"}}.
    Values are JSON when they parse as JSON, else plain strings."""
    data: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--input {item!r}: use component.socket=value (or socket=value)")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        except (RecursionError, ValueError):
            parsed = parse_json(value, f"--input {key}", "inputs", InputError)  # raises the one-line error
        check_parsed(parsed, f"--input {key}", InputError, value)
        component_name, dot, socket = key.partition(".")
        if dot:
            data.setdefault(component_name, {})[socket] = parsed
        else:
            data[key] = parsed
    return data


def _is_chat_message_list(tp: Any) -> bool:
    from haystack.dataclasses import ChatMessage

    return typing.get_origin(tp) is list and typing.get_args(tp) == (ChatMessage,)


def _is_document_list(tp: Any) -> bool:
    from haystack import Document

    return typing.get_origin(tp) is list and typing.get_args(tp) == (Document,)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    from haystack import Document
    from haystack.dataclasses import ChatMessage

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None) and (_is_chat_message_list(arg) or _is_document_list(arg)):
                tp = arg
    if _is_chat_message_list(tp) and isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if isinstance(item, ChatMessage):
                out.append(item)
            elif isinstance(item, dict) and "role" in item and ("content" in item or "text" in item):
                role, text = item["role"], item.get("text", item.get("content"))
                if isinstance(text, list):
                    out.append(ChatMessage.from_dict(item))
                    continue
                makers = {"user": ChatMessage.from_user, "system": ChatMessage.from_system,
                          "assistant": ChatMessage.from_assistant}
                if role not in makers:
                    raise InputError(f"{where}[{i}]: role {role!r} must be user, system or assistant")
                out.append(makers[role](text))
            elif isinstance(item, str):
                out.append(ChatMessage.from_user(item))
            else:
                raise InputError(f"{where}[{i}]: expected a chat message like {{\"role\": \"user\", "
                                 "\"content\": \"...\"}")
        return out
    if _is_document_list(tp) and isinstance(value, list):
        return [v if isinstance(v, Document) else Document.from_dict(v) if isinstance(v, dict)
                else Document(content=str(v)) for v in value]
    return value


def prepare_run_data(pipeline: Any, run: RunInput, declared: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Check a run's data against the pipeline's inputs and coerce it; returns nested data for Pipeline.run.
    `declared`: the input names a Hayhooks / deepset pipeline file declares ({name: [component.socket, ...]})."""
    spec = pipeline.inputs(include_components_with_connected_inputs=True)
    open_inputs = pipeline.inputs()
    components = set(pipeline.graph.nodes)
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in run.data.items():
        if key in components and isinstance(value, dict):
            nested[key] = dict(value)
        else:
            flat[key] = value
    for key, value in flat.items():
        if declared and key in declared:
            for target in declared[key]:
                comp, _, socket = target.partition(".")
                nested.setdefault(comp, {})[socket] = value
            continue
        targets = [c for c, sockets in open_inputs.items() if key in sockets]
        if not targets:
            hint = _closest(key, [s for sockets in open_inputs.values() for s in sockets] + sorted(components))
            raise InputError(f"{run.where}: input {key!r} matches no component or open input socket{hint}")
        for comp in targets:
            nested.setdefault(comp, {})[key] = value
    for comp, sockets in nested.items():
        if comp not in components:
            hint = _closest(comp, sorted(components))
            raise InputError(f"{run.where}: no component named {comp!r} in the pipeline{hint}")
        for socket, value in list(sockets.items()):
            declared = spec.get(comp, {}).get(socket)
            if declared is None:
                known = sorted(spec.get(comp, {}))
                hint = (f"; {comp} is a chat generator now: pass {comp}.messages (a string works)"
                        if socket == "prompt" and "messages" in known else "")
                raise InputError(f"{run.where}: {comp}.{socket}: not an input of {comp!r} "
                                 f"(inputs: {', '.join(known) or 'none'}){hint}")
            sockets[socket] = _coerce(value, declared["type"], f"{run.where}: {comp}.{socket}")
    missing = [f"{comp}.{socket}" for comp, sockets in open_inputs.items()
               for socket, desc in sockets.items()
               if desc.get("is_mandatory") and socket not in nested.get(comp, {})]
    if missing:
        raise InputError(f"{run.where}: missing required input {', '.join(missing)}; add it to the inputs "
                         "(e.g. --input " + missing[0] + "=...)")
    return nested


def _closest(word: str, options: list[str]) -> str:
    import difflib

    match = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
