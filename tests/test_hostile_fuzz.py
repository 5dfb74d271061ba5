"""Property-based hostile inputs (hypothesis): random and mutated pipeline YAML, inputs, .genops.yml and flag
values. Whatever the input, genops ends with a documented exit code, one `error:` line on bad input, no
traceback, and no hang (tests/hostile.py). Example counts are tuned so the module runs in well under a minute.

Run with `-s` to see the tally: `.venv/bin/python -m pytest -q -s tests/test_hostile_fuzz.py`.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import sample
from hostile import invoke, summary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHAIN = sample("chain")
CHAIN_INPUTS = sample("chain", "inputs.json")
VALID = yaml.safe_load(Path(CHAIN).read_text(encoding="utf-8"))
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    """Deterministic (derandomized) runs, no example database written into the repository, no per-example
    deadline (the hang bound lives in the harness)."""
    return settings(FUZZ, max_examples=examples)

@pytest.fixture(autouse=True, scope="module")
def _restore_process_state():
    """Random configs may name environment variables under `redact:` or set `limits:`: neither may leak into the
    tests that run after this module in the same process."""
    from genops_cli import redact, safe_load

    env_names, values = set(redact._explicit_env), set(redact._explicit_values)
    yield
    redact._explicit_env.clear()
    redact._explicit_env.update(env_names)
    redact._explicit_values.clear()
    redact._explicit_values.update(values)
    safe_load.reset_file_limits()


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                    st.sampled_from(["", "-", "=1+1", "haystack.components.x.Y", "os.system", "*a", "&a", "!!str",
                                     "draft_prompt.prompt", "reviewer.messages", "\x00", "\ud7ff", "9" * 50]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
YAML_ALPHABET = st.sampled_from(list("abc:-[]{}&*!|>'\"#%@`,? \n\t0123456789.") + ["\u00e9", "\x85", "\ufeff"])


def _tmp_file(name: str, data: bytes | str) -> str:
    directory = Path(tempfile.mkdtemp(prefix="genops-fuzz-"))
    path = directory / name
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return str(path)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested dict/list (for mutations)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


PIPELINE_PATHS = [p for p in _paths(VALID) if p]


def _mutated(path: tuple[Any, ...], value: Any, drop: bool) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


@fuzz(30)
@given(st.text(YAML_ALPHABET, max_size=120))
def test_random_yaml_text_as_pipeline(text):
    path = _tmp_file("pipeline.yml", text)
    invoke(["run", path, "--inputs", CHAIN_INPUTS, "--simulate"], expect={0, 1, 2})


@fuzz(15)
@given(st.binary(max_size=200))
def test_random_bytes_as_pipeline(data):
    path = _tmp_file("pipeline.yml", data)
    invoke(["run", path, "--inputs", CHAIN_INPUTS, "--simulate"], expect={0, 1, 2})


@pytest.mark.slow  # most mutants still build and run the pipeline
@fuzz(25)
@given(st.sampled_from(PIPELINE_PATHS), json_values, st.booleans())
def test_mutated_pipeline(path, value, drop):
    """The sample pipeline with one value anywhere replaced by a random value (or removed)."""
    try:
        text = yaml.safe_dump(_mutated(path, value, drop), allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    file = _tmp_file("pipeline.yml", text)
    invoke(["run", file, "--inputs", CHAIN_INPUTS, "--simulate"], expect={0, 1, 2})


@fuzz(25)
@given(json_values)
def test_random_json_inputs(value):
    try:
        text = json.dumps(value, allow_nan=True)
    except (ValueError, UnicodeEncodeError):
        return
    path = _tmp_file("inputs.json", text)
    invoke(["run", CHAIN, "--inputs", path, "--simulate"], expect={0, 1, 2})


@fuzz(10)
@given(json_values, json_values)
def test_random_values_for_the_real_sockets(request, audience):
    """Shaped like real inputs (the chain's two sockets), with random values."""
    data = {"draft_prompt": {"request": request, "audience": audience}}
    try:
        text = json.dumps(data)
    except (ValueError, UnicodeEncodeError):
        return
    path = _tmp_file("inputs.jsonl", text + "\n" + text + "\n")
    invoke(["run", CHAIN, "--inputs", path, "--simulate"], expect={0, 1, 2})


CONFIG_KEYS = ["ledger", "haystack", "attribution", "budgets", "reservation", "alerts", "compliance", "simulation",
               "pricing", "observability", "providers", "logging", "limits", "redact", "billing", "agents"]


@fuzz(40)
@given(st.dictionaries(st.sampled_from(CONFIG_KEYS), json_values, max_size=3))
def test_random_config(config):
    try:
        text = yaml.safe_dump(config, allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    path = _tmp_file(".genops.yml", text)
    invoke(["--config", path, "budget", "list", "--json"], expect={0, 2})


@fuzz(15)
@given(st.binary(max_size=200))
def test_random_bytes_as_config(data):
    path = _tmp_file(".genops.yml", data)
    invoke(["--config", path, "budget", "list", "--json"], expect={0, 2})


WINDOW = st.one_of(st.text(max_size=20), st.from_regex(r"\A-?[0-9]{1,14}(m|min|h|d|w|y)?\Z"),
                   st.from_regex(r"\A[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}(T[0-9]{1,2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2}|Z)?)?\Z"))


@fuzz(30)
@given(WINDOW)
def test_random_since(value):
    invoke(["analyze", "--since", value, "--json"], expect={0, 2})


@fuzz(30)
@given(WINDOW, WINDOW)
def test_random_from_to(start, end):
    invoke(["analyze", "--from", start, "--to", end, "--json"], expect={0, 2})


@fuzz(25)
@given(st.one_of(st.text(max_size=12), st.from_regex(r"\A[0-9]{1,5}-[0-9]{1,3}\Z")))
def test_random_report_period(value):
    invoke(["report", "--tenant", "acme", "--period", value, "--format", "json"], expect={0, 2})


@fuzz(25)
@given(st.one_of(st.text(max_size=16), st.decimals(allow_nan=True, allow_infinity=True).map(str),
                 st.from_regex(r"\A-?[0-9]{0,3}(\.[0-9]{0,3})?(e[+-]?[0-9]{1,12})?\Z")))
def test_random_money_flags(value):
    invoke(["budget", "set", "team:fuzz", "--daily", value, "--json"], expect={0, 2})


@pytest.mark.slow  # every example runs the pipeline
@fuzz(10)
@given(st.text(max_size=40), st.text(max_size=40))
def test_random_tenant_and_tag_strings(tenant, tag):
    """Free-text attribution (tenant ids, tags) is data: stored and shown, never markup, formulas or paths."""
    invoke(["run", CHAIN, "--inputs", CHAIN_INPUTS, "--simulate", "--json", "--customer", tenant or "x",
            "--tag", f"k={tag}"], expect={0, 2})


def test_zz_fuzz_tally():
    """Printed with -s: hostile cases in this module (examples of every property above), hangs and tracebacks."""
    from hostile import TALLY

    summary("fuzz")
    assert TALLY["hangs"] == 0 and TALLY["tracebacks"] == 0
