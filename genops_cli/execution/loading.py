"""Load a serialized Haystack pipeline with Haystack's own loader, and learn what it will call.

    loaded = load_pipeline("pipeline.yml", allow_modules=["mycompany"], simulate=False)
    loaded.pipeline            # haystack Pipeline, warmed up on first run
    loaded.profile             # PipelineProfile: each LLM/embedder component's provider, model, max_tokens

Every failure is a `PipelineLoadError` whose one-line message names the file, the component and the field.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genops_cli.errors import PipelineLoadError
from genops_cli.safe_load import parse_yaml, read_text
from genops_cli.tracking.capture import ComponentProfile, PipelineProfile
from genops_cli.tracking.usage import (
    endpoint_of,
    is_embedder,
    is_llm_component,
    max_tokens_of,
    model_of,
    provider_for,
)

SIMULATOR_MODULE = "genops_cli.execution.simulate"

#: haystack_integrations module prefix -> pip package that provides it.
INTEGRATION_PACKAGES = {
    "haystack_integrations.components.generators.anthropic": "anthropic-haystack",
    "haystack_integrations.components.generators.amazon_bedrock": "amazon-bedrock-haystack",
    "haystack_integrations.components.embedders.amazon_bedrock": "amazon-bedrock-haystack",
    "haystack_integrations.components.generators.google_genai": "google-genai-haystack",
    "haystack_integrations.components.embedders.google_genai": "google-genai-haystack",
    "haystack_integrations.components.generators.cohere": "cohere-haystack",
    "haystack_integrations.components.embedders.cohere": "cohere-haystack",
    "haystack_integrations.components.rankers.cohere": "cohere-haystack",
    "haystack_integrations.components.generators.ollama": "ollama-haystack",
    "haystack_integrations.components.embedders.ollama": "ollama-haystack",
    "haystack_integrations.components.generators.mistral": "mistral-haystack",
    "haystack_integrations.components.embedders.mistral": "mistral-haystack",
    "haystack_integrations.components.connectors.langfuse": "langfuse-haystack",
    "haystack_integrations.components.retrievers.qdrant": "qdrant-haystack",
    "haystack_integrations.document_stores.qdrant": "qdrant-haystack",
    "haystack_integrations.components.retrievers.chroma": "chroma-haystack",
    "haystack_integrations.document_stores.chroma": "chroma-haystack",
    "haystack_integrations.components.retrievers.pgvector": "pgvector-haystack",
    "haystack_integrations.document_stores.pgvector": "pgvector-haystack",
    "haystack_integrations.components.retrievers.elasticsearch": "elasticsearch-haystack",
    "haystack_integrations.document_stores.elasticsearch": "elasticsearch-haystack",
    "haystack_integrations.components.retrievers.opensearch": "opensearch-haystack",
    "haystack_integrations.document_stores.opensearch": "opensearch-haystack",
    "haystack_integrations.components.retrievers.weaviate": "weaviate-haystack",
    "haystack_integrations.document_stores.weaviate": "weaviate-haystack",
    "haystack_integrations.components.retrievers.pinecone": "pinecone-haystack",
    "haystack_integrations.document_stores.pinecone": "pinecone-haystack",
    "haystack_integrations.components.generators.google_ai": "google-ai-haystack",
    "haystack_integrations.components.generators.llama_cpp": "llama-cpp-haystack",
    "haystack_integrations.components.generators.openrouter": "openrouter-haystack",
    "haystack_integrations.components.generators.nvidia": "nvidia-haystack",
    "haystack_integrations.components.embedders.nvidia": "nvidia-haystack",
    "haystack_integrations.components.embedders.fastembed": "fastembed-haystack",
    "haystack_integrations.components.embedders.jina": "jina-haystack",
    # deepset's experimental package (chat message stores, early components)
    "haystack_experimental": "haystack-experimental",
}

@dataclass
class LoadedPipeline:
    pipeline: Any
    profile: PipelineProfile
    path: Path
    data: dict[str, Any]
    simulated: bool = False
    secret_env_vars: set[str] = field(default_factory=set)
    #: the modules trusted when it was loaded (--allow-module): a simulated copy (estimate) trusts the same
    allow_modules: list[str] = field(default_factory=list)
    #: under --simulate: each replaced component or document store (genops_cli.execution.simulate.Simulated)
    simulated_components: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def declared_inputs(self) -> dict[str, list[str]]:
        """Input names the file declares (Hayhooks and deepset pipeline files: `inputs: {query: [retriever.query,
        prompt_builder.query]}`): a run may pass `{"query": ...}` for all of them."""
        raw = self.data.get("inputs")
        out: dict[str, list[str]] = {}
        if isinstance(raw, dict):
            for name, targets in raw.items():
                targets = [targets] if isinstance(targets, str) else targets
                if isinstance(targets, list) and all(isinstance(t, str) and "." in t for t in targets):
                    out[str(name)] = list(targets)
        return out


def integration_package_for(module: str) -> str | None:
    for prefix, package in INTEGRATION_PACKAGES.items():
        if module == prefix or module.startswith(prefix + "."):
            return package
    from genops_cli.execution.migrate import migration_table

    table = migration_table()
    package = table.package_for_module(module)
    if package:
        return package
    for row in table.rows:  # classes moved into integration packages
        if row.package and row.new and (module == row.new.rpartition(".")[0]
                                        or module.startswith(row.new.rpartition(".")[0] + ".")):
            return row.package
    return None


def check_pipeline_path(path: str | Path) -> Path:
    """The pipeline argument names a file (checked first: a missing file is the first thing to say)."""
    p = Path(path)
    if not p.exists():
        raise PipelineLoadError(f"{path}: pipeline file not found; pass the path of a Haystack pipeline YAML")
    if p.is_dir():
        raise PipelineLoadError(f"{path}: is a directory; pass the pipeline YAML file inside it")
    return p


def read_pipeline_file(path: str | Path) -> tuple[Path, str, dict[str, Any]]:
    p = check_pipeline_path(path)
    text = read_text(p, "pipeline", PipelineLoadError, label=str(path))
    # Bounded parse (size, alias expansion, depth) with Haystack's loader semantics: SafeLoader plus
    # `!!python/tuple` (Pipeline.dumps() writes tuples that way); every other python/* tag stays refused.
    data = parse_yaml(text, str(path), "pipeline", PipelineLoadError, tuples=True)
    from genops_cli.execution.migrate_v1 import convert_v1, is_v1

    if is_v1(data):
        try:
            convert_v1(data, path)
        except PipelineLoadError as exc:
            raise PipelineLoadError(
                f"{path}: a Haystack 1.x pipeline that genops cannot rewrite ({str(exc).removeprefix(f'{path}: ')}); "
                "rebuild it and save it with Pipeline.dumps()") from None
        raise PipelineLoadError(
            f"{path}: a Haystack 1.x pipeline (components as a list, a 'pipelines' section); genops runs Haystack "
            f"2.x and 3.x pipelines: genops validate {path} --fix-issues rewrites it as a Haystack 3 pipeline"
        )
    if not isinstance(data, dict) or not isinstance(data.get("components"), dict):
        raise PipelineLoadError(
            f"{path}: not a Haystack pipeline (expected a mapping with 'components' and 'connections'); "
            "create it with Pipeline.dumps()"
        )
    if "connections" in data and not isinstance(data["connections"], list):
        raise PipelineLoadError(f"{path}: 'connections' must be a list of {{sender, receiver}} entries")
    _check_shape(path, data)
    register_pipeline_secrets(data)
    return p, text, data


def _check_shape(path: str | Path, data: dict[str, Any]) -> None:
    """The structure every later step relies on, checked once: a hand-edited or hostile file fails here with the
    entry it is about, not deep inside profiling or Haystack."""
    for name, comp in data["components"].items():
        if not isinstance(name, str) or not name:
            raise PipelineLoadError(f"{path}: component name {name!r} must be a non-empty string")
        if not isinstance(comp, dict) or not isinstance(comp.get("type"), str):
            raise PipelineLoadError(f"{path}: component '{name}': must be a mapping with a 'type' (the component's "
                                    "class path) and 'init_parameters'")
        if comp.get("init_parameters") is not None and not isinstance(comp["init_parameters"], dict):
            raise PipelineLoadError(f"{path}: component '{name}': 'init_parameters' must be a mapping")
    for i, conn in enumerate(data.get("connections") or []):
        if not isinstance(conn, dict) or not isinstance(conn.get("sender"), str) \
                or not isinstance(conn.get("receiver"), str):
            raise PipelineLoadError(f"{path}: connections[{i}]: must be a mapping with 'sender' and 'receiver' "
                                    "strings like 'component.socket'")
    if data.get("metadata") is not None and not isinstance(data["metadata"], dict):
        raise PipelineLoadError(f"{path}: 'metadata' must be a mapping")
    runs = data.get("max_runs_per_component")
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
        raise PipelineLoadError(f"{path}: 'max_runs_per_component' must be a positive whole number")


def register_pipeline_secrets(data: dict[str, Any]) -> None:
    """Mask the values of every env-var Secret the pipeline uses, whatever the variable's name: a provider
    error may echo the key into records and output."""
    from genops_cli.redact import register_env_vars

    for comp in data["components"].values():
        if isinstance(comp, dict):
            for _param, env_vars, _strict in _env_secrets(comp.get("init_parameters") or {}):
                register_env_vars(env_vars)


def pipeline_hash(data: dict[str, Any]) -> str:
    """Stable content hash of a pipeline definition (key order and formatting do not matter)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _env_secrets(params: Any, path: str = "") -> list[tuple[str, list[str], bool]]:
    """(init param path, env var names, strict) of every env-var Secret in serialized init parameters."""
    found: list[tuple[str, list[str], bool]] = []
    if isinstance(params, dict):
        if params.get("type") == "env_var" and isinstance(params.get("env_vars"), list):
            found.append((path, [str(v) for v in params["env_vars"]], bool(params.get("strict", True))))
            return found
        for key, value in params.items():
            found += _env_secrets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(params, list):
        for i, value in enumerate(params):
            found += _env_secrets(value, f"{path}[{i}]")
    return found


def _profile_component(name: str, type_path: str, params: dict[str, Any]) -> ComponentProfile:
    type_name = type_path.rsplit(".", 1)[-1]
    llm = is_llm_component(type_name, type_path)
    emb = is_embedder(type_name, type_path)
    model = model_of(params)
    if model is None and (llm or emb):
        model = default_model(type_path)
    profile = ComponentProfile(
        name=name,
        type_name=type_name,
        fully_qualified_type=type_path,
        is_llm=llm,
        is_embedder=emb,
        model=str(model) if (llm or emb) and model else None,
        max_tokens=max_tokens_of(params) if llm else None,
        is_retriever="Retriever" in type_name,
        top_k=params.get("top_k") if isinstance(params.get("top_k"), int) else None,
        streaming=bool(params.get("streaming_callback")),
        endpoint=endpoint_of(params),
    )
    if llm or emb:
        profile.provider = provider_for(type_name, type_path, profile.model, params)
    generator = params.get("chat_generator")
    if isinstance(generator, dict) and isinstance(generator.get("type"), str):
        profile.inner = _profile_component(name, generator["type"], generator.get("init_parameters") or {})
    return profile


_MODEL_PARAMS = ("model", "azure_deployment", "model_name")


def default_model(type_path: str) -> str | None:
    """The model a component calls when its YAML names none: its class's default (or, for a class removed in
    Haystack 3, its replacement's), read from the constructor signature."""
    import inspect

    from genops_cli.execution.migrate import migration_table

    row = migration_table().find(type_path)
    for candidate in (type_path, row.new if row is not None else None):
        module, _, name = (candidate or "").rpartition(".")
        if module.split(".", 1)[0] not in ("haystack", "haystack_integrations", "haystack_experimental"):
            continue  # a module outside Haystack runs code on import: only the loader imports it, if allowed
        try:
            cls = getattr(importlib.import_module(module), name)
            parameters = inspect.signature(cls.__init__).parameters
        except Exception:  # not importable here: the model stays unknown
            continue
        for key in _MODEL_PARAMS:
            default = parameters[key].default if key in parameters else None
            if isinstance(default, str) and default:
                return default
    return None


def _check_types(path: Path, data: dict[str, Any], allow_modules: list[str]) -> None:
    """Fail early, on the first component whose type is disallowed, missing or moved (with the fix)."""
    for _name, message in component_type_issues(path, data, allow_modules):
        raise PipelineLoadError(message)


def component_type_issues(path: Path, data: dict[str, Any], allow_modules: list[str]) -> list[tuple[str, str]]:
    """(component, one-line message with the fix) for every component whose own type or a nested type (an Agent's
    generator, a tool, a document store) is outside the allowlist, cannot be imported, or was removed or moved.

    One entry per component (its first problem): `genops validate` lists them all, `load_pipeline` stops at the
    first. Import-time logging and warnings of third-party modules are the caller's to capture.
    """
    is_allowed = module_allowlist(allow_modules)
    issues: list[tuple[str, str]] = []
    for name, comp in data["components"].items():
        if not isinstance(comp, dict) or not isinstance(comp.get("type"), str):
            issues.append((name, f"{path}: component '{name}': missing 'type' (the component's class path)"))
            continue
        for type_path in _nested_types(comp):
            message = _type_problem(path, name, comp["type"], type_path, is_allowed)
            if message:
                issues.append((name, message))
                break
    return issues


#: Haystack 3's default deserialization allowlist; genops applies the same on Haystack 2.x, which has none.
DEFAULT_ALLOWED_MODULES = ("haystack", "haystack_integrations", "haystack_experimental", "builtins", "typing",
                           "collections")


def module_allowlist(allow_modules: list[str]) -> Callable[[str], bool]:
    """module -> allowed? Haystack 3's own allowlist check (with `allow_modules` and
    HAYSTACK_DESERIALIZATION_ALLOWLIST); on Haystack 2.x the same defaults, enforced by genops."""
    try:
        from haystack.core.serialization_security import _check_module_allowed, _deserialization_context
    except ImportError:
        extra = [p.strip().rstrip(".*") for p in os.environ.get("HAYSTACK_DESERIALIZATION_ALLOWLIST", "").split(",")]
        prefixes = [p for p in (*DEFAULT_ALLOWED_MODULES, *allow_modules, *extra) if p]
        return lambda module: any(module == p or module.startswith(p + ".") for p in prefixes)

    def allowed(module: str) -> bool:
        try:
            with _deserialization_context(allowed_modules=allow_modules, unsafe=False):
                _check_module_allowed(module)
        except Exception:
            return False
        return True

    return allowed


def _type_problem(path: Path, name: str, own_type: str, type_path: str,
                  is_allowed: Callable[[str], bool]) -> str | None:
    module, _, cls_name = type_path.rpartition(".")
    nested = "" if type_path == own_type else f"nested type {type_path} "
    lead = f"{path}: component '{name}': {nested}{'- ' if nested else ''}"
    if not module:
        return f"{path}: component '{name}': type {type_path!r} is not a full class path"
    if module.startswith(SIMULATOR_MODULE):
        return None
    if not is_allowed(module):
        return (f"{path}: component '{name}': {nested or f'type {type_path} '}is outside the module allowlist; "
                f"add --allow-module {module.split('.')[0]} if you trust it")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return f"{lead}cannot import {module} ({exc.name} missing); {_missing_class_hint(type_path)}"
    except Exception as exc:
        return f"{lead}importing {module} failed ({root_cause(exc)})"
    if not hasattr(mod, cls_name):
        return f"{lead}{module} has no {cls_name}; {_missing_class_hint(type_path)}"
    defined_in = getattr(getattr(mod, cls_name), "__module__", module)
    if type_path == own_type and defined_in != module and isinstance(getattr(mod, cls_name), type):
        # Haystack's component registry knows a class only by the module that defines it, not a re-export
        return f"{lead}Haystack looks {cls_name} up as {defined_in}.{cls_name}; use that class path"
    return None


def _haystack_3() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("haystack-ai").split(".")[0]) >= 3
    except PackageNotFoundError:
        return True


def _missing_class_hint(type_path: str) -> str:
    """The fix for a class that cannot be imported: its migration (from the table), the integration package that
    provides its module, or the closest real class. A package is named only when it is known, never guessed."""
    from genops_cli.execution.migrate import closest_class, migration_table

    row = migration_table().find(type_path)
    if row is not None:
        if row.kind == "report" or not row.new:
            return f"it was removed in Haystack 3; {row.advice}"
        install = f" (pip install {row.package})" if row.package else ""
        return (f"it was removed or moved in Haystack 3: use {row.new}{install}; "
                "genops validate --fix-issues rewrites it")
    package = integration_package_for(type_path.rpartition(".")[0])
    if package:
        return f"pip install {package}"
    root = type_path.split(".", 1)[0]
    if root == "haystack" and not _haystack_3():
        return "it is not in this Haystack (2.x); it comes from Haystack 3: pip install -U 'haystack-ai>=3,<4'"
    if root not in ("haystack", "haystack_integrations", "haystack_experimental"):
        # a custom module: only its authors know the package (never guess one)
        return f"install the package or add the folder that provides the {root} module to PYTHONPATH"
    closest = closest_class(type_path)
    return (f"unknown class path; the closest known class is {closest}" if closest
            else "unknown class path; check the class name and the package that provides it")


def _nested_types(comp: dict[str, Any]) -> list[str]:
    """The component's own type and the component types nested in its init parameters (Agent generator...)."""
    types = [comp["type"]]
    params = comp.get("init_parameters") or {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            # Components and document stores serialize as {type, init_parameters}; tools as {type, data}.
            if isinstance(value.get("type"), str) and ("init_parameters" in value or "data" in value) \
                    and "." in value["type"]:
                types.append(value["type"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(params)
    return types


def _check_secrets(path: Path, data: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for name, comp in data["components"].items():
        for param, env_vars, strict in _env_secrets(comp.get("init_parameters") or {}):
            names.update(env_vars)
            if strict and not any(os.environ.get(v) for v in env_vars):
                raise PipelineLoadError(
                    f"{path}: component '{name}': init parameter '{param}' needs environment variable "
                    f"{' or '.join(env_vars)}, which is not set; export it (or run with --simulate)"
                )
    return names


def _one_line(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()


_OBJECT_REPR = re.compile(r"<([\w.]+?)(?: object)? at 0x[0-9a-fA-F]+>")
_DATA_DUMP = re.compile(r" with the following data: .*? Original error: ", re.S)


def root_cause(exc: BaseException) -> str:
    """The innermost cause of a (Haystack) error, whole: `DeserializationError` and `ComponentError` wrap the
    real problem (an unset variable, a missing module) after a dump of the component's data; the dump and
    `<object at 0x...>` reprs are removed, the sentence is never cut."""
    chain: list[BaseException] = []
    inner: BaseException | None = exc
    while inner is not None and all(inner is not e for e in chain):
        chain.append(inner)
        inner = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
    # The innermost error is the cause; when that is a bare "No module named x", Haystack's own import error
    # around it says what to install.
    inner = chain[-1]
    if type(inner) is ModuleNotFoundError:
        inner = next((e for e in chain if isinstance(e, ImportError) and "pip install" in str(e)), inner)
    text = str(inner) or type(inner).__name__
    if inner is exc and "Original error: " in text:
        text = text.rsplit("Original error: ", 1)[1]
    text = _DATA_DUMP.sub(": ", text)
    text = _OBJECT_REPR.sub(lambda m: f"<{m.group(1).rsplit('.', 1)[-1]}>", text)
    text = re.sub(r"\*{5,}", " ", text)  # NLTK frames its messages in rows of stars
    text = re.sub(r"\s+", " ", text).strip()
    if isinstance(inner, ImportError) and not isinstance(inner, ModuleNotFoundError) or (
            isinstance(inner, ModuleNotFoundError) and inner.name):
        return text if "pip install" in text or "Run '" in text else f"{type(inner).__name__}: {text}"
    return f"{type(inner).__name__}: {text}"


def pipeline_display_name(path: Path, data: dict[str, Any]) -> str:
    """metadata.name, else the folder of a `pipeline.yml`, else the file stem."""
    name = (data.get("metadata") or {}).get("name")
    if name:
        return str(name)
    return path.parent.name if path.stem == "pipeline" else path.stem


def profile_pipeline_data(path: Path, data: dict[str, Any],
                          model_overrides: dict[str, str] | None = None) -> PipelineProfile:
    """What each component will call, read from the serialized init parameters (no component is built).
    Applies `model_overrides` to `data` in place; the hash covers the definition as it will run."""
    profile = PipelineProfile(name=pipeline_display_name(path, data), path=str(path),
                              pipeline_hash=pipeline_hash(data))
    for name, comp in data["components"].items():
        params = comp.get("init_parameters") or {}
        comp["init_parameters"] = params
        if model_overrides:
            _apply_model_override(name, comp, model_overrides)
        profile.components[name] = _profile_component(name, comp["type"], params)
    if model_overrides:
        profile.pipeline_hash = pipeline_hash(data)
    return profile


def load_pipeline(
    path: str | Path,
    allow_modules: list[str] | None = None,
    simulate: bool = False,
    simulation_output_tokens: int | None = None,
    model_overrides: dict[str, str] | None = None,
    check_secrets: bool = True,
    init_overrides: dict[str, Any] | None = None,
) -> LoadedPipeline:
    """Read, check and build the pipeline. With `simulate`, LLM and embedding components become simulators
    with the same model names; `model_overrides` ({component or "*": model}) substitutes models (compare).
    `init_overrides` ({param: value}) sets an init parameter on every component (nested ones included) that
    declares it, e.g. {"max_retries": 0} when genops owns retries; it does not change the pipeline hash."""
    from haystack import Pipeline
    from haystack.core.serialization import DeserializationCallbacks

    p, _text, data = read_pipeline_file(path)
    allow = list(allow_modules or [])
    if not simulate:
        _check_types(p, data, allow)
    data = copy.deepcopy(data)
    profile = profile_pipeline_data(p, data, model_overrides)
    if not simulate:
        from genops_cli.tracking.usage import request_stream_usage

        # Streams of chat-completions generators report usage only when asked: measured, not estimated.
        request_stream_usage(data["components"])
    if init_overrides:
        _apply_init_overrides(data["components"], init_overrides)
    secrets: set[str] = set()
    _check_init_params(p, data, allow)
    replaced: list[Any] = []
    if simulate:
        from genops_cli.execution.simulate import simulate_components

        # Stand-ins replace model-backed and network-bound classes before the type check: a simulated run
        # needs neither their integration packages nor their keys.
        replaced = simulate_components(data, profile, simulation_output_tokens)
        _check_types(p, data, allow)
        allow.append(SIMULATOR_MODULE)
    elif check_secrets:
        secrets = _check_secrets(p, data)
    _check_optional_dependencies(p, data)

    state: dict[str, str | None] = {"component": None}

    def pre_init(component_name: str, component_cls: type, init_params: dict[str, Any]) -> None:
        state["component"] = component_name

    try:
        pipeline = Pipeline.from_dict(
            data, callbacks=DeserializationCallbacks(component_pre_init=pre_init), allowed_modules=allow
        )
    except Exception as exc:
        raise PipelineLoadError(_load_error_message(p, data, state["component"], exc)) from None
    return LoadedPipeline(pipeline=pipeline, profile=profile, path=p, data=data, simulated=simulate,
                          secret_env_vars=secrets, allow_modules=list(allow_modules or []),
                          simulated_components=replaced)


def load_for_estimate(path: str | Path, **kwargs: Any) -> tuple[LoadedPipeline, str | None]:
    """The pipeline for a forecast (which simulates every call anyway): built for real when it can be, else with
    stand-ins when only installable parts are missing (an integration package, a removed class); returns the
    pipeline and, in the second case, a note saying why. Any other load error is raised as it is."""
    try:
        return load_pipeline(path, check_secrets=False, **kwargs), None
    except PipelineLoadError as exc:
        text = str(exc)
        if not any(hint in text for hint in ("pip install", "removed or moved in Haystack 3", "not installed")):
            raise
        loaded = load_pipeline(path, simulate=True, **kwargs)
        return loaded, f"{text.split(': ', 1)[-1]}: estimated with stand-ins for the components that need it"


def _check_optional_dependencies(path: Path, data: dict[str, Any]) -> None:
    """Fail before a run on a module a component imports only when it runs (nltk, trafilatura, pypdf...)."""
    from genops_cli.execution.migrate import missing_optional_dependencies

    for name, module, package in missing_optional_dependencies(data):
        raise PipelineLoadError(
            f"{path}: component '{name}': needs the Python module {module} (imported only when it runs), which is "
            f"not installed; pip install {package} (genops validate {path} --fix-issues --yes installs it)"
        )


def _apply_init_overrides(value: Any, overrides: dict[str, Any]) -> None:
    """Set each overridden init parameter wherever a (nested) component's init_parameters declare it."""
    if isinstance(value, dict):
        params = value.get("init_parameters")
        if isinstance(value.get("type"), str) and isinstance(params, dict):
            for key, new in overrides.items():
                if key in params:
                    params[key] = new
        for child in value.values():
            _apply_init_overrides(child, overrides)
    elif isinstance(value, list):
        for child in value:
            _apply_init_overrides(child, overrides)


def _check_init_params(path: Path, data: dict[str, Any], allow_modules: list[str]) -> None:
    """Check init parameters against each constructor's signature before building: the error names the
    parameter (Haystack's own message is a dump of all parameters), and components that simulation replaces
    fail on a typo exactly as they would for real. Only allowed modules are imported."""
    import inspect

    is_allowed = module_allowlist(allow_modules)
    for name, comp in data["components"].items():
        module, _, cls_name = comp["type"].rpartition(".")
        if not module or not is_allowed(module):
            continue  # the type check reports it (a module runs code on import)
        try:
            cls = getattr(importlib.import_module(module), cls_name)
            signature = inspect.signature(cls.__init__)
        except (ImportError, AttributeError, TypeError, ValueError):
            continue
        params = signature.parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        for key in comp.get("init_parameters") or {}:
            if key not in params:
                raise PipelineLoadError(
                    f"{path}: component '{name}' ({comp['type']}): unknown init parameter '{key}'; remove it or "
                    "check the component's documentation"
                )


def _apply_model_override(name: str, comp: dict[str, Any], overrides: dict[str, str]) -> None:
    model = overrides.get(name) or overrides.get("*")
    if not model:
        return
    params = comp["init_parameters"]
    type_path = comp["type"]
    type_name = type_path.rsplit(".", 1)[-1]
    if is_llm_component(type_name, type_path) and "model" in params:
        params["model"] = model
    generator = params.get("chat_generator")
    if isinstance(generator, dict):
        gen_params = generator.setdefault("init_parameters", {})
        gen_params["model"] = model


def _load_error_message(path: Path, data: dict[str, Any], component: str | None, exc: Exception) -> str:
    text = _one_line(exc)
    if type(exc).__name__ == "PipelineConnectError" or (
        "connect" in text.lower() and ("does not exist" in text or "doesn't exist" in text)
    ):
        return f"{path}: connections: {text.strip(chr(39))}; fix the sender/receiver in 'connections'"
    if component is not None:
        comp = data["components"].get(component) or {}
        if isinstance(exc, TypeError) and "unexpected keyword argument" in text:
            match = re.search(r"unexpected keyword argument '(\w+)'", text)
            field_name = match.group(1) if match else "?"
            return (
                f"{path}: component '{component}' ({comp.get('type')}): unknown init parameter '{field_name}'; "
                "remove it or check the component's documentation"
            )
        return f"{path}: component '{component}' ({comp.get('type')}): {root_cause(exc)}"
    return f"{path}: {root_cause(exc)}"


def profile_from_pipeline(pipeline: Any, name: str | None = None) -> PipelineProfile:
    """The PipelineProfile of a live `Pipeline` built in code (the Python API has no YAML).

    Each component is serialized with its own `to_dict()` (the same init parameters a YAML would carry, so
    `_profile_component` reads model, max_tokens and an Agent's generator the same way); a component that cannot
    serialize is profiled from its attributes (`model`, `generation_kwargs`, `chat_generator`).

        profile = profile_from_pipeline(my_pipeline, name="support-bot")
    """
    components: dict[str, Any] = {}
    for comp_name, instance in pipeline.walk():
        cls = type(instance)
        type_path = f"{cls.__module__}.{cls.__name__}"
        components[comp_name] = {"type": type_path, "init_parameters": _live_init_parameters(instance)}
        _register_live_secrets(instance)
    data = {"components": components, "connections": _live_connections(pipeline)}
    register_pipeline_secrets(data)
    metadata = getattr(pipeline, "metadata", None) or {}
    display = name or str(metadata.get("name") or "pipeline")
    profile = PipelineProfile(name=display, path=f"<python:{display}>", pipeline_hash=pipeline_hash(data),
                              serialized=data)
    for comp_name, comp in components.items():
        profile.components[comp_name] = _profile_component(comp_name, comp["type"], comp["init_parameters"])
    return profile


def _register_live_secrets(instance: Any, depth: int = 0) -> None:
    """Secrets held by a component built in code (token or env-var, also inside an Agent's generator or a
    document store): their values are masked in records and output."""
    from haystack.utils import Secret

    from genops_cli.redact import register_secret

    for value in list(getattr(instance, "__dict__", {}).values()):
        if isinstance(value, Secret):
            register_secret(value)
        elif depth < 2 and hasattr(value, "to_dict") and not isinstance(value, type):
            _register_live_secrets(value, depth + 1)  # a nested component, store or client wrapper


def _live_init_parameters(instance: Any) -> dict[str, Any]:
    from genops_cli.tracking.usage import live_init_parameters

    params = live_init_parameters(instance)
    generator = getattr(instance, "chat_generator", None)
    if generator is not None and "chat_generator" not in params:  # an Agent that did not serialize itself
        cls = type(generator)
        params["chat_generator"] = {"type": f"{cls.__module__}.{cls.__name__}",
                                    "init_parameters": _live_init_parameters(generator)}
    return params


def _live_connections(pipeline: Any) -> list[dict[str, str]]:
    graph = getattr(pipeline, "graph", None)
    if graph is None:
        return []
    return sorted(
        ({"sender": f"{u}.{d.get('from_socket').name}", "receiver": f"{v}.{d.get('to_socket').name}"}
         for u, v, d in graph.edges(data=True) if d.get("from_socket") is not None and d.get("to_socket") is not None),
        key=lambda c: (c["sender"], c["receiver"]),
    )
