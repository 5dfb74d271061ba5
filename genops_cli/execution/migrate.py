"""Pipeline migrations from the versioned table in `migrations.yml`: removed and moved Haystack classes.

    table = migration_table()
    plan = plan_migrations(data)            # data: the pipeline as read from YAML (not modified)
    for fix in plan.fixes:                  # Fix(component, title, detail, package, data after the fix)
        ...                                 # each fix applies on top of the previous ones
    plan.reports                            # what is not mechanically equivalent: (component, message)

A fix is applied only where the result does the same thing: parameters with no equivalent, sockets whose
consumers cannot be adapted, templates that use a reply in a way that cannot be rewritten are reported and the
component is left alone. The table also lists optional dependencies that components import only when they run.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

PROMPT_BUILDER = "haystack.components.builders.prompt_builder.PromptBuilder"
CHAT_PROMPT_BUILDER = "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder"
_TEMPLATE_CONSUMERS = ("PromptBuilder", "ChatPromptBuilder", "OutputAdapter", "ConditionalRouter")
_REPLIES_ANY_CONSUMERS = ("AnswerBuilder",)  # takes list[str] or list[ChatMessage] alike
_TYPED_JOINERS = {"BranchJoiner": "type_", "ListJoiner": "list_type_"}  # fine when typed for ChatMessage


@dataclass(frozen=True)
class Migration:
    """One row of the table."""

    old: str
    kind: str  # move | text_to_chat | report
    new: str | None = None
    package: str | None = None
    aliases: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    drop_if_default: tuple[tuple[str, Any], ...] = ()
    params: str | None = None
    when: tuple[tuple[str, Any], ...] = ()
    advice: str | None = None

    def matches(self, type_path: str, init_parameters: dict[str, Any]) -> bool:
        if type_path != self.old and type_path not in self.aliases:
            return False
        return all(init_parameters.get(key) == value for key, value in self.when)


@dataclass(frozen=True)
class OptionalDependency:
    module: str  # what the component imports
    package: str  # what pip installs
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def needed(self, init_parameters: dict[str, Any]) -> bool:
        if not self.when:
            return True
        return any(init_parameters.get(key) in values for key, values in self.when)


@dataclass(frozen=True)
class MigrationTable:
    version: int
    rows: tuple[Migration, ...]
    optional: dict[str, tuple[OptionalDependency, ...]]
    #: haystack_integrations module prefix -> the pip package that provides it
    integration_packages: dict[str, str] = field(default_factory=dict)

    def package_for_module(self, module: str) -> str | None:
        """The integration package that provides `module` (longest known prefix), else None."""
        best = None
        for prefix, package in self.integration_packages.items():
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, package)
        return best[1] if best else None

    def find(self, type_path: str, init_parameters: dict[str, Any] | None = None) -> Migration | None:
        params = init_parameters or {}
        return next((row for row in self.rows if row.matches(type_path, params)), None)

    def packages(self) -> set[str]:
        """Every pip package the table names (the only ones genops ever advises for a moved class)."""
        return {row.package for row in self.rows if row.package}

    def known_class_paths(self) -> set[str]:
        paths = set()
        for row in self.rows:
            paths.update((row.old, *row.aliases))
            if row.new:
                paths.add(row.new)
        return paths


def _pairs(value: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((str(k), v) for k, v in (value or {}).items())


@functools.cache
def migration_table() -> MigrationTable:
    """The table shipped in the package (parsed once)."""
    import yaml

    text = resources.files("genops_cli.execution").joinpath("migrations.yml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    rows = tuple(
        Migration(old=r["old"], kind=r["kind"], new=r.get("new"), package=r.get("package"),
                  aliases=tuple(r.get("aliases") or ()), rename=_pairs(r.get("rename")),
                  drop_if_default=_pairs(r.get("drop_if_default")), params=r.get("params"),
                  when=_pairs(r.get("when")), advice=r.get("advice"))
        for r in raw["migrations"]
    )
    optional = {
        type_path: tuple(OptionalDependency(d["import"], d["package"],
                                            tuple((k, tuple(v)) for k, v in (d.get("when") or {}).items()))
                         for d in deps)
        for type_path, deps in (raw.get("optional_dependencies") or {}).items()
    }
    packages = {str(k): str(v) for k, v in (raw.get("integration_packages") or {}).items()}
    return MigrationTable(version=int(raw["version"]), rows=rows, optional=optional, integration_packages=packages)


# -- planning -----------------------------------------------------------------------------------------------------

@dataclass
class Fix:
    """One mechanical fix: the pipeline data after it (cumulative), and what it changed."""

    component: str
    title: str
    details: list[str] = field(default_factory=list)
    package: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    old_type: str = ""
    new_type: str = ""


@dataclass
class MigrationPlan:
    fixes: list[Fix] = field(default_factory=list)
    reports: list[tuple[str, str]] = field(default_factory=list)  # (component, what to do by hand)

    @property
    def data(self) -> dict[str, Any] | None:
        return self.fixes[-1].data if self.fixes else None


class _NotMechanical(Exception):
    """A row applies but the change would not do the same thing: report it, leave the component alone."""


def plan_migrations(data: dict[str, Any]) -> MigrationPlan:
    """The fixes (each on top of the previous) and the reports for a pipeline read from YAML. Components nested
    in init parameters (an Agent's tools, a ComponentTool's component, document stores) move too."""
    table = migration_table()
    plan = MigrationPlan()
    current = copy.deepcopy(data)
    for name in list(current.get("components") or {}):
        comp = current["components"].get(name)
        if not isinstance(comp, dict) or not isinstance(comp.get("type"), str):
            continue
        row = table.find(comp["type"], comp.get("init_parameters") or {})
        if row is not None:
            current = _plan_one(plan, current, name, [], row)
        else:
            current = _plan_defining_path(plan, current, name)
        for where in _nested_paths(current["components"][name].get("init_parameters"), []):
            node = _node(current["components"][name]["init_parameters"], where)
            nested = table.find(node["type"], node.get("init_parameters") or {})
            if nested is not None:
                current = _plan_one(plan, current, name, ["init_parameters", *where], nested)
    return plan


def defining_path(type_path: str) -> str | None:
    """The path Haystack's component registry knows a class by (its defining module), when `type_path` is a
    package's re-export of it (haystack.components.builders.PromptBuilder); None when it already is, or when
    the class cannot be imported here."""
    import importlib

    module, _, name = type_path.rpartition(".")
    if module.split(".", 1)[0] not in ("haystack", "haystack_integrations", "haystack_experimental"):
        return None  # a module outside Haystack runs code on import: never imported to plan a fix
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except Exception:  # not installed: the loader reports it
        return None
    if not isinstance(cls, type) or cls.__module__ == module:
        return None
    return f"{cls.__module__}.{name}"


def _plan_defining_path(plan: MigrationPlan, current: dict[str, Any], name: str) -> dict[str, Any]:
    old_type = current["components"][name]["type"]
    new_type = defining_path(old_type)
    if new_type is None:
        return current
    attempt = copy.deepcopy(current)
    attempt["components"][name]["type"] = new_type
    plan.fixes.append(Fix(component=name, title=f"{name}: {old_type} -> {new_type}", old_type=old_type,
                          new_type=new_type, data=attempt, details=[
                              "the same class, named by the module that defines it (Haystack's component registry "
                              "does not know a package's re-export path)"]))
    return attempt


def _nested_paths(value: Any, where: list[Any]) -> list[list[Any]]:
    """Paths to the {type, init_parameters} dicts nested in a component's init parameters."""
    found: list[list[Any]] = []
    if isinstance(value, dict):
        if where and isinstance(value.get("type"), str) and isinstance(value.get("init_parameters"), dict):
            found.append(where)
        for key, child in value.items():
            found += _nested_paths(child, [*where, key])
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _nested_paths(child, [*where, i])
    return found


def _node(root: Any, where: list[Any]) -> Any:
    for key in where:
        root = root[key]
    return root


def _plan_one(plan: MigrationPlan, current: dict[str, Any], name: str, where: list[Any],
              row: Migration) -> dict[str, Any]:
    """Plan one row on the component `name` (or the node nested at `where` in it); returns the data after it."""
    node = _node(current["components"][name], where)
    label = name if not where else f"{name} ({'.'.join(str(k) for k in where[1:])})"
    if row.kind == "report" or not row.new:
        plan.reports.append((name, f"{label}: {node['type']} was removed in Haystack 3; "
                                   f"{row.advice or 'no replacement'}"))
        return current
    if where and row.kind == "text_to_chat":
        plan.reports.append((name, f"{label}: {node['type']} was removed in Haystack 3; use {row.new} there "
                                   "(its prompt and replies change shape); left unchanged"))
        return current
    attempt = copy.deepcopy(current)
    try:
        fix = _apply_row(attempt, name, where, row)
    except _NotMechanical as exc:
        plan.reports.append((name, f"{label}: {node['type']} -> {row.new}: {exc}; left unchanged"))
        return current
    if fix is None:
        return current
    fix.data = attempt
    plan.fixes.append(fix)
    return attempt


def _apply_row(data: dict[str, Any], name: str, where: list[Any], row: Migration) -> Fix | None:
    comp = _node(data["components"][name], where)
    old_type = comp["type"]
    params = dict(comp.get("init_parameters") or {})
    label = name if not where else f"{name} ({'.'.join(str(k) for k in where[1:])})"
    title = (f"{label}: {old_type.rsplit('.', 1)[-1]} -> {row.new}" if old_type != row.new
             else f"{label}: {old_type.rsplit('.', 1)[-1]} init parameters for Haystack 3")
    fix = Fix(component=name, title=title, package=row.package, old_type=old_type, new_type=str(row.new))
    for key, value in row.drop_if_default:
        if key in params:
            if params[key] != value:
                raise _NotMechanical(f"init parameter '{key}' is {params[key]!r}; the new class has no equivalent")
            del params[key]
            fix.details.append(f"dropped '{key}: {value}' (no effect)")
    for old_key, new_key in row.rename:
        if old_key in params:
            params[new_key] = params.pop(old_key)
            fix.details.append(f"renamed init parameter '{old_key}' -> '{new_key}'")
    if row.params == "tgi_api":
        _tgi_api_params(params, fix)
    elif row.params == "agent_tool_invoker":
        _agent_tool_invoker(params, fix)
    if old_type == row.new and not fix.details:
        return None  # a parameter row with nothing to change here
    comp["type"] = row.new
    comp["init_parameters"] = params
    if row.kind == "text_to_chat":
        _text_to_chat(data, name, fix)
    if row.package:
        fix.details.append(f"needs pip install {row.package}")
    return fix


def _agent_tool_invoker(params: dict[str, Any], fix: Fix) -> None:
    """Agent(tool_invoker_kwargs=...) of Haystack 2.x -> the Agent's own tool parameters in Haystack 3."""
    if "tool_invoker_kwargs" not in params:
        return
    kwargs = params.pop("tool_invoker_kwargs") or {}
    mapping = {"max_workers": "tool_concurrency_limit",
               "enable_streaming_callback_passthrough": "tool_streaming_callback_passthrough"}
    unknown = sorted(set(kwargs) - set(mapping))
    if unknown:
        raise _NotMechanical(f"tool_invoker_kwargs {', '.join(unknown)} have no Haystack 3 equivalent")
    for old_key, new_key in mapping.items():
        if old_key in kwargs:
            params[new_key] = kwargs[old_key]
    fix.details.append("tool_invoker_kwargs -> the Agent's tool_concurrency_limit / "
                       "tool_streaming_callback_passthrough" if kwargs else "dropped 'tool_invoker_kwargs: null'")


def _tgi_api_params(params: dict[str, Any], fix: Fix) -> None:
    """HuggingFaceTGIGenerator(url | model) -> HuggingFaceAPI*(api_type, api_params)."""
    if "api_type" in params:
        return
    url, model = params.pop("url", None), params.pop("model", None)
    if url:
        params["api_type"], params["api_params"] = "text_generation_inference", {"url": url}
    elif model:
        params["api_type"], params["api_params"] = "serverless_inference_api", {"model": model}
    else:
        raise _NotMechanical("neither 'url' nor 'model' is set, so the inference endpoint is unknown")
    fix.details.append(f"url/model -> api_type: {params['api_type']}, api_params: {params['api_params']}")


# -- text generator -> chat generator ---------------------------------------------------------------------------

def _connections(data: dict[str, Any]) -> list[dict[str, Any]]:
    conns = data.get("connections")
    return conns if isinstance(conns, list) else []


def _split(endpoint: str) -> tuple[str, str]:
    component, _, socket = str(endpoint).partition(".")
    return component, socket


def _text_to_chat(data: dict[str, Any], name: str, fix: Fix) -> None:
    comp = data["components"][name]
    params = comp["init_parameters"]
    system = params.pop("system_prompt", None)
    if system is not None and not isinstance(system, str):
        raise _NotMechanical("system_prompt is not a string")
    conns = _connections(data)
    # a connection may name the component only ("receiver: llm"): the text generator's one input is `prompt`
    feeders = [c for c in conns if _split(c.get("receiver", "")) in ((name, "prompt"), (name, ""))]
    if system and not (len(feeders) == 1 and (_is_prompt_builder(_type_of(data, _split(feeders[0]["sender"])[0]))
                                              or _has_system(data, _split(feeders[0]["sender"])[0], system))):
        raise _NotMechanical("system_prompt can only move into a system message of the PromptBuilder that feeds "
                             "it; this prompt comes from elsewhere")
    for conn in feeders:
        sender, socket = _split(conn["sender"])
        if _is_prompt_builder(_type_of(data, sender)) and socket in ("prompt", ""):
            _to_chat_prompt_builder(data, sender, name, system, fix)
        conn["receiver"] = f"{name}.messages"
        fix.details.append(f"connection {conn['sender']} -> {name}.prompt now goes to {name}.messages")
    if not feeders:
        fix.details.append(f"run inputs must pass {name}.messages (a string or chat messages) instead of "
                           f"{name}.prompt")
    _adapt_reply_consumers(data, name, fix)
    fix.details.append(f"{name}.replies now carries ChatMessage objects (read .text where a string is needed)")


def _has_system(data: dict[str, Any], builder: str, system: str) -> bool:
    """A ChatPromptBuilder (converted for another generator) that already opens with this system prompt."""
    comp = data["components"].get(builder) or {}
    template = (comp.get("init_parameters") or {}).get("template")
    if comp.get("type") != CHAT_PROMPT_BUILDER or not isinstance(template, list) or not template:
        return False
    first = template[0] if isinstance(template[0], dict) else {}
    texts = [part.get("text") for part in first.get("content") or [] if isinstance(part, dict)]
    return first.get("role") == "system" and texts and texts[0] in (system, f"{{% raw %}}{system}{{% endraw %}}")


def _is_prompt_builder(type_path: str) -> bool:
    """Haystack's PromptBuilder, by its defining path or the package's re-export."""
    return type_path in (PROMPT_BUILDER, "haystack.components.builders.PromptBuilder")


def _type_of(data: dict[str, Any], component: str) -> str:
    return str((data["components"].get(component) or {}).get("type", ""))


def _to_chat_prompt_builder(data: dict[str, Any], builder: str, generator: str, system: str | None,
                            fix: Fix) -> None:
    others = [c for c in _connections(data) if _split(c.get("sender", ""))[0] == builder
              and _split(c.get("receiver", ""))[0] != generator]
    for conn in others:
        # Another text generator with the same system prompt migrates the same way (one chat template for both);
        # anything else reading the prompt needs a string.
        receiver, socket = _split(conn["receiver"])
        row = migration_table().find(_type_of(data, receiver))
        params = (data["components"].get(receiver) or {}).get("init_parameters") or {}
        if not (row is not None and row.kind == "text_to_chat" and socket in ("prompt", "")
                and (params.get("system_prompt") or None) == (system or None)):
            raise _NotMechanical(f"PromptBuilder '{builder}' also feeds {conn['receiver']}, which needs a string")
    comp = data["components"][builder]
    params = dict(comp.get("init_parameters") or {})
    template = params.get("template")
    if not isinstance(template, str):
        raise _NotMechanical(f"PromptBuilder '{builder}' has no string template")
    messages = []
    if system:
        # system_prompt was sent as it was; in a ChatPromptBuilder it is a template: keep Jinja syntax literal
        literal = f"{{% raw %}}{system}{{% endraw %}}" if re.search(r"{{|{%|{#", system) else system
        messages.append(_message("system", literal))
    messages.append(_message("user", template))
    params["template"] = messages
    comp["type"], comp["init_parameters"] = CHAT_PROMPT_BUILDER, params
    fix.details.append(f"{builder}: PromptBuilder -> ChatPromptBuilder (template -> user message"
                       + (", system_prompt -> system message)" if system else ")"))


def _message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"text": text}], "meta": {}, "name": None}


def _adapt_reply_consumers(data: dict[str, Any], generator: str, fix: Fix) -> None:
    conns = _connections(data)
    for conn in list(conns):
        sender, socket = _split(conn.get("sender", ""))
        if sender != generator:
            continue
        socket = socket or "replies"  # "sender: llm" names the generator's first output
        receiver, rsocket = _split(conn.get("receiver", ""))
        rtype = _type_of(data, receiver).rsplit(".", 1)[-1]
        if socket == "meta":
            if rtype != "AnswerBuilder":
                raise _NotMechanical(f"{conn['receiver']} reads {generator}.meta, which chat generators do not have")
            conns.remove(conn)
            fix.details.append(f"removed {generator}.meta -> {conn['receiver']} (AnswerBuilder reads the meta of "
                               "each ChatMessage)")
        elif socket == "replies":
            if rtype in _REPLIES_ANY_CONSUMERS:
                continue
            if rtype in _TYPED_JOINERS:
                declared = ((data["components"].get(receiver) or {}).get("init_parameters") or {}).get(
                    _TYPED_JOINERS[rtype])
                if declared is None or "ChatMessage" in str(declared):
                    continue  # untyped (2.x ListJoiner) or already typed for chat messages
                raise _NotMechanical(f"{conn['receiver']} ({rtype}) is typed {declared}, not chat messages")
            if rtype not in _TEMPLATE_CONSUMERS:
                raise _NotMechanical(f"{conn['receiver']} ({rtype}) expects replies as strings")
            _adapt_template_consumer(data, receiver, rsocket, fix)


def _adapt_template_consumer(data: dict[str, Any], receiver: str, variable: str, fix: Fix) -> None:
    params = data["components"][receiver].setdefault("init_parameters", {})
    changed = False
    for key in ("template", "custom_filters_template"):
        if isinstance(params.get(key), str):
            new = reply_template_to_chat(params[key], variable)
            changed |= new != params[key]
            params[key] = new
        elif isinstance(params.get(key), list):  # ChatPromptBuilder messages
            for message in params[key]:
                for part in (message or {}).get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        new = reply_template_to_chat(part["text"], variable)
                        changed |= new != part["text"]
                        part["text"] = new
    for route in params.get("routes") or []:  # ConditionalRouter
        for key in ("condition", "output"):
            if isinstance(route.get(key), str):
                new = reply_template_to_chat(route[key], variable)
                changed |= new != route[key]
                route[key] = new
    if changed:
        fix.details.append(f"{receiver}: template reads {variable}[i].text instead of {variable}[i]")


def reply_template_to_chat(template: str, variable: str) -> str:
    """Rewrite the Jinja uses of a `list[str]` variable for the `list[ChatMessage]` it becomes, so the template
    renders exactly what it rendered before: `v[0]` -> `v[0].text`, any other use of `v` (printed whole, looped
    over, filtered, tested) -> `(v | map(attribute='text') | list)`, the same list of strings. Attribute access
    on the list itself has no equivalent and is not mechanical."""
    v = re.escape(variable)
    texts = f"({variable} | map(attribute='text') | list)"

    def fix_expression(match: re.Match[str]) -> str:
        expr = match.group(0)
        if re.search(rf"(?<![\w.]){v}\s*\.(?!text\b)", expr):
            raise _NotMechanical(f"the template reads an attribute of the '{variable}' list itself")
        expr = re.sub(rf"(?<![\w.]){v}\[(-?\d+)\](?!\s*\.|\w)", rf"{variable}[\1].text", expr)
        return re.sub(rf"(?<![\w.'\"]){v}(?![\w'\"]|\[-?\d+\]\.text|\s*=[^=])", texts, expr)

    return re.sub(r"{{.*?}}|{%.*?%}", fix_expression, template, flags=re.S)


# -- unknown class paths --------------------------------------------------------------------------------------------

@functools.cache
def _installed_classes() -> dict[str, str]:
    """Class name -> public class path of the installed Haystack and integration components (read from the
    source files, nothing imported)."""
    import importlib.util
    from pathlib import Path

    found: dict[str, str] = {}
    for package in ("haystack", "haystack_integrations"):
        spec = importlib.util.find_spec(package)
        for root in (spec.submodule_search_locations or []) if spec else []:
            base = Path(root)
            for source in base.rglob("*.py"):
                if source.name.startswith("_") or "test" in source.parts:
                    continue
                module = ".".join((package, *source.relative_to(base).with_suffix("").parts))
                try:
                    text = source.read_text(encoding="utf-8")
                except OSError:
                    continue
                for cls in re.findall(r"^class ([A-Z]\w+)", text, flags=re.M):
                    found.setdefault(cls, f"{module}.{cls}")
    return found


def closest_class(type_path: str) -> str | None:
    """The known class (installed, or named in the migration table) whose name is closest to `type_path`'s."""
    import difflib

    name = type_path.rpartition(".")[2]
    candidates = dict(_installed_classes())
    for row in migration_table().rows:  # replacements only: a removed class is no suggestion
        if row.new:
            candidates.setdefault(row.new.rpartition(".")[2], row.new)
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return candidates[match[0]] if match else None


# -- optional dependencies ----------------------------------------------------------------------------------------

def _importable_module(module: str) -> bool:
    """Installed and importable: a package that is present but fails to import (a missing dependency of its own)
    is as missing as an absent one."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec(module) is None:
            return False
        importlib.import_module(module)
    except Exception:
        return False
    return True


def missing_dependencies_of(type_path: str, init_parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """(module, pip package) of each dependency a component of this class and settings imports only when it runs
    and that cannot be imported here."""
    deps = migration_table().optional.get(type_path)
    return [(dep.module, dep.package) for dep in deps or ()
            if dep.needed(init_parameters) and not _importable_module(dep.module)]


def missing_optional_dependencies(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(component, module, pip package) for each lazily imported dependency the pipeline will need but cannot
    import here (nltk for sentence splitting, trafilatura for HTMLToDocument, pypdf...)."""
    out: list[tuple[str, str, str]] = []

    def visit(name: str, value: Any) -> None:
        if isinstance(value, dict):
            params = value.get("init_parameters") if isinstance(value.get("init_parameters"), dict) else {}
            out.extend((name, module, package) for module, package in missing_dependencies_of(
                str(value.get("type")), params))
            for child in value.values():
                visit(name, child)
        elif isinstance(value, list):
            for child in value:
                visit(name, child)

    for name, comp in (data.get("components") or {}).items():
        visit(name, comp)
    return out
