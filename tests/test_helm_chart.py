"""The Helm chart, rendered and linted by the Helm v4 Go SDK (PyPI `helm-python-sdk`; no helm
binary needed), every object validated against the Kubernetes schemas (`kubernetes-validate`,
Kubernetes 1.28 and 1.33, strict: unknown fields are errors, as with `kubectl --validate=strict`)
and the ServiceMonitor/PrometheusRule against the prometheus-operator CRD structure (the
`cloudcoil-models-prometheus-operator` models, generated from the operator's CRDs)."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

from .test_deploy_artifacts import ALERTS, CHART, alert_rules, check_config, load_yaml

KUBERNETES_VERSIONS = ("1.28.0", "1.33.0")


def render(values: dict | None = None) -> dict[tuple[str, str], dict]:
    """`helm template rel CHART -n mon -f values`: (kind, name) -> object."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="rel", namespace="mon")
    objs = {}
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objs, f"{key} rendered twice"
                objs[key] = doc
    return objs


def render_error(values: dict) -> str:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as exc:
        chart.render(values, name="rel", namespace="mon")
    return str(exc.value)


def lint(values: dict | None = None) -> None:
    """`helm lint --strict`: no warning or error (severity 2, 3); info findings are fine."""
    for version in KUBERNETES_VERSIONS:
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, (version, problems)


@functools.cache
def _crd_schema(kind: str) -> dict:
    """JSON schema of an operator resource, closed like a structural CRD schema under strict
    field validation: a property the CRD does not define is an error."""
    schema = getattr(monitoring_v1, kind).model_json_schema(by_alias=True)

    def close(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def validate(objs: dict[tuple[str, str], dict]) -> None:
    for (kind, name), obj in objs.items():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            errors = sorted(jsonschema.Draft202012Validator(_crd_schema(kind)).iter_errors(obj), key=str)
            assert not errors, f"{kind}/{name}: {errors[0].json_path}: {errors[0].message}"
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{kind}/{name} on Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_crd_validation_refuses_an_unknown_field():
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
               "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "1m"}]}}
    with pytest.raises(AssertionError, match="intervall"):
        validate({("ServiceMonitor", "x"): monitor})
    monitor["spec"]["endpoints"][0] = {"port": "http", "interval": "1m"}
    validate({("ServiceMonitor", "x"): monitor})


def test_kubernetes_validation_refuses_an_unknown_field():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dataa": {}}
    with pytest.raises(pytest.fail.Exception, match="dataa"):
        validate({("ConfigMap", "x"): cm})
def chart_values() -> dict:
    return load_yaml(CHART / "values.yaml")


def test_chart_metadata_and_files():
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "dijkwacht"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", chart["version"])
    assert chart["appVersion"]
    for name in ("_helpers.tpl", "NOTES.txt", "deployment.yaml", "service.yaml", "configmap.yaml",
                 "pvc.yaml", "servicemonitor.yaml", "prometheusrule.yaml", "cronjob-data-update.yaml"):
        assert (CHART / "templates" / name).is_file(), name


def test_chart_values_defaults():
    values = chart_values()
    assert values["serviceMonitor"]["enabled"] is False
    assert values["prometheusRule"]["enabled"] is False
    assert values["persistence"]["enabled"] is True
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["containerPort"] == 9849
    assert isinstance(values["targets"], list)
    assert values["config"]["agent"]["home"] == ["EU"]


def test_chart_alert_rules_are_a_copy_of_the_prometheus_rules():
    assert (CHART / "files" / "alerts.yml").read_bytes() == ALERTS.read_bytes(), (
        "copy deploy/prometheus/alerts.yml to deploy/helm/dijkwacht/files/alerts.yml")


def test_chart_alert_rules_job_rewrite_hits_only_the_down_alert():
    # The PrometheusRule template rewrites job="dijkwacht" to the chart's job name.
    hits = [r["alert"] for r in alert_rules() if 'job="dijkwacht"' in r["expr"]]
    assert hits == ["DijkwachtDown"]
    assert 'job="dijkwacht"' in (CHART / "templates" / "prometheusrule.yaml").read_text().replace('\\"', '"')


def _template_texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((CHART / "templates").iterdir())}


def test_chart_templates_reference_existing_values():
    values = chart_values()
    missing = []
    for name, text in _template_texts().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node = values
            for key in path.strip(".").split("."):
                if not isinstance(node, dict) or key not in node:
                    missing.append(f"{name}: .Values{path}")
                    break
                node = node[key]
    assert not missing, missing


def test_chart_templates_include_defined_helpers():
    texts = _template_texts()
    defined = {d for t in texts.values() for d in re.findall(r'define\s+"([^"]+)"', t)}
    for name, text in texts.items():
        for used in re.findall(r'(?:include|template)\s+"([^"]+)"', text):
            assert used in defined, f"{name} includes undefined {used}"


def test_chart_template_delimiters_balanced():
    for name, text in _template_texts().items():
        assert text.count("{{") == text.count("}}"), name


FULL_VALUES = {
    "targets": [
        {"domain": "gemeente.nl", "labels": {"sector": "municipality", "owner": 'team "a"'}},
        {"domain": "waterschap.nl"},
    ],
    "config": {"agent": {"nameservers": ["9.9.9.9:53"]}, "extraToml": "[extra]\nkey = 1"},
    "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kps"}},
    "prometheusRule": {"enabled": True},
    "dataUpdate": {"cronJob": {"enabled": True}},
    "webConfig": {"secretName": "dijkwacht-web"},
}


def test_helm_lint():
    lint()
    lint(FULL_VALUES)


def test_helm_template_defaults():
    objs = render()
    validate(objs)
    kinds = {k for k, _ in objs}
    assert {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "CronJob"}
    dep = objs[("Deployment", "rel-dijkwacht")]
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert re.fullmatch(r"[0-9a-f]{64}", spec["template"]["metadata"]["annotations"]["checksum/config"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert c["ports"][0]["containerPort"] == 9849
    assert c["args"][:2] == ["--config", "/etc/dijkwacht/dijkwacht.toml"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/var/lib/dijkwacht", "/etc/dijkwacht/dijkwacht.toml", "/tmp"} <= mounts
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    assert state["persistentVolumeClaim"]["claimName"] == "rel-dijkwacht-state"
    assert [i["name"] for i in pod["initContainers"]] == ["data-update"]
    assert "dijkwacht data update --data-dir" in pod["initContainers"][0]["args"][0]
    cfg = tomllib.loads(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"])
    assert cfg["daemon"]["listen"] == "0.0.0.0:9849"
    assert cfg["daemon"]["state_path"] == "/var/lib/dijkwacht/state.db"
    assert cfg["agent"]["home"] == ["EU"]


def test_helm_template_all_features(tmp_path):
    objs = render(FULL_VALUES)
    validate(objs)
    cfg = tomllib.loads(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"])
    assert cfg["targets"] == [
        {"domain": "gemeente.nl", "labels": {"sector": "municipality", "owner": 'team "a"'}},
        {"domain": "waterschap.nl"},
    ]
    assert cfg["agent"]["nameservers"] == ["9.9.9.9:53"]
    assert cfg["extra"] == {"key": 1}
    # The agent accepts the rendered file (without the made-up [extra] table).
    rendered = objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"]
    f = tmp_path / "dijkwacht.toml"
    f.write_text(rendered.split("[extra]")[0], encoding="utf-8")
    check_config(f)
    sm = objs[("ServiceMonitor", "rel-dijkwacht")]
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    rule = objs[("PrometheusRule", "rel-dijkwacht")]
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"]
    assert ("CronJob", "rel-dijkwacht-data-update") in objs
    c = objs[("Deployment", "rel-dijkwacht")]["spec"]["template"]["spec"]["containers"][0]
    assert "--web.config.file" in c["args"]


def test_helm_config_change_rolls_the_pod():
    def checksum(values):
        dep = render(values)[("Deployment", "rel-dijkwacht")]
        return dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum({"targets": [{"domain": "a.nl"}]}) != checksum({"targets": [{"domain": "b.nl"}]})


def test_helm_template_rejects_bad_values():
    assert "domain is required" in render_error({"targets": [{"labels": {"sector": "x"}}]})
    assert "persistence" in render_error({"persistence": {"enabled": False}, "dataUpdate": {"cronJob": {"enabled": True}}})


