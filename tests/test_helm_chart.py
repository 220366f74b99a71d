"""The Helm chart, rendered and linted by the Helm v4 Go SDK (PyPI `helm-python-sdk`; no helm
binary needed), every object validated against the Kubernetes schemas (`kubernetes-validate`,
Kubernetes 1.28 and 1.33, strict: unknown fields are errors, as with `kubectl --validate=strict`)
and the ServiceMonitor/PrometheusRule against the prometheus-operator CRD structure (the
`cloudcoil-models-prometheus-operator` models, generated from the operator's CRDs)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import random
import re
import shlex
import subprocess
import sys
import tomllib

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from dijkwacht.config import PluginSettings

from .test_deploy_artifacts import CHART, DIJKWACHT, check_config, load_yaml, run

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


# The models' module holds about 190,000 Python objects; imported here, every later garbage
# collection of the test session would walk them. A subprocess hands over the JSON schemas only.
_CRD_SCHEMAS = (
    "import json; from cloudcoil.models.prometheus_operator import v1; "
    "print(json.dumps({k: getattr(v1, k).model_json_schema(by_alias=True) for k in ('ServiceMonitor', 'PrometheusRule')}))"
)


@functools.cache
def _crd_schemas() -> dict[str, dict]:
    return json.loads(subprocess.run([sys.executable, "-c", _CRD_SCHEMAS], capture_output=True, text=True, check=True, timeout=120).stdout)


def _crd_schema(kind: str) -> dict:
    """JSON schema of an operator resource, closed like a structural CRD schema under strict
    field validation: a property the CRD does not define is an error."""
    schema = copy.deepcopy(_crd_schemas()[kind])

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


def chart_schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))


def test_chart_metadata_and_files():
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "dijkwacht"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", chart["version"])
    assert chart["appVersion"]
    for name in ("_helpers.tpl", "NOTES.txt", "statefulset.yaml", "service.yaml", "configmap.yaml", "configmap-targets.yaml",
                 "poddisruptionbudget.yaml", "networkpolicy.yaml", "servicemonitor.yaml", "prometheusrule.yaml"):
        assert (CHART / "templates" / name).is_file(), name


def test_chart_values_defaults():
    values = chart_values()
    assert values["replicas"] == 1
    assert values["serviceMonitor"]["enabled"] is False
    assert values["prometheusRule"]["enabled"] is False
    assert values["persistence"]["enabled"] is True
    assert values["lifecycle"]["enabled"] is False
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["containerPort"] == 9849
    assert isinstance(values["targets"], list)
    assert values["config"]["agent"]["home"] == ["EU"]
    helm.Chart.load(CHART).validate_schema(values)


def _template_texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((CHART / "templates").iterdir())}


def test_chart_templates_reference_values_the_schema_declares():
    missing = []
    for name, text in _template_texts().items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node = chart_schema()
            for key in path.strip(".").split("."):
                if key not in node.get("properties", {}):
                    missing.append(f"{name}: .Values{path}")
                    break
                node = node["properties"][key]
    assert not missing, missing


def test_chart_templates_include_defined_helpers():
    texts = _template_texts()
    defined = {d for t in texts.values() for d in re.findall(r'define\s+"([^"]+)"', t)}
    used = set()
    for name, text in texts.items():
        for helper in re.findall(r'(?:include|template)\s+"([^"]+)"', text):
            assert helper in defined, f"{name} includes undefined {helper}"
            used.add(helper)
    assert defined == used, f"helpers defined but not used: {defined - used}"


def test_chart_template_delimiters_balanced():
    for name, text in _template_texts().items():
        assert text.count("{{") == text.count("}}"), name


def test_schema_knows_every_agent_setting_the_chart_does_not_own():
    """A key added to the agent's config must be added to values.schema.json (and the other way round)."""
    from dijkwacht.config import AGENT_FIELDS, DAEMON_FIELDS

    config = chart_schema()["properties"]["config"]["properties"]
    assert set(config["agent"]["properties"]) == set(AGENT_FIELDS) - {"targets_dir"}
    assert set(config["daemon"]["properties"]) == set(DAEMON_FIELDS) - {"listen", "state_path", "web_config", "shard"}
    assert set(config["plugins"]["properties"]) == {f.name for f in dataclasses.fields(PluginSettings)}


# The chart writes numbers with toJson, which renders 10.0 as 10: what the agent then reads.
def _as_rendered(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _agent_accepts(check, value) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def schema_accepts():
    with helm.Chart.load(CHART) as chart:
        def accepts(values: dict) -> bool:
            try:
                chart.validate_schema(values)
            except helm.HelmError:
                return False
            return True

        yield accepts


def _numbers(prop: dict) -> list[float]:
    """Every bound the schema states and the numbers just beyond it, and a spread from tiny to huge."""
    bounds = [branch[k] for branch in (prop, *prop.get("anyOf", [])) for k in ("minimum", "maximum", "const") if k in branch]
    values = {0, -1, 0.5, 1.5, *(10.0**e for e in range(-4, 9)), *(3 * 10**e for e in range(8))}
    for b in bounds:
        values |= {b, b - 1, b + 1, b - 1e-9, b + 1e-9, b * (1 - 1e-9), b * (1 + 1e-9)}
    return sorted(values)


def test_schema_takes_exactly_the_numbers_the_agent_takes(schema_accepts):
    """The ranges come from the agent's own checks (agent/config.py), tried at and beyond every
    bound: a schema looser than the agent renders a config the agent refuses (a crash loop)."""
    from dijkwacht.config import AGENT_FIELDS, DAEMON_FIELDS

    config = chart_schema()["properties"]["config"]["properties"]
    tried = 0
    for table, fields in (("agent", AGENT_FIELDS), ("daemon", DAEMON_FIELDS)):
        for key, prop in config[table]["properties"].items():
            check = fields[key]
            if not any(_agent_accepts(check, v) for v in (1, 1.5, 100)):
                continue  # not a number
            for value in _numbers(prop):
                agent = _agent_accepts(check, _as_rendered(value))
                assert schema_accepts({"config": {table: {key: value}}}) == agent, (f"{table}.{key}", value, agent)
            tried += 1
    assert tried == 11


# Intervals as people write them, and what the agent refuses.
INTERVALS = ["1s", "30s", "90s", "1m", "15m", "1h", "1h30m", "2h15m30s", "12h0m", "1m30s", "1.5h", "2.5m", "720h", "43200m", "2592000s", "719h59m59s"]
BAD_INTERVALS = ["500ms", "999ms", "0.5s", "0s", "0m", "0.0001h", "721h", "720.5h", "720h1s", "43201m", "2592001s", "1d", "15 minutes", "1h30", "", "h"]


def test_schema_takes_intervals_the_agent_takes_and_refuses_sub_second_and_over_30_days(schema_accepts):
    from dijkwacht.config import DAEMON_FIELDS

    check = DAEMON_FIELDS["interval"]

    def schema(value) -> bool:
        return schema_accepts({"config": {"daemon": {"interval": value}}})

    for value in INTERVALS:
        assert _agent_accepts(check, value) and schema(value), value
    for value in BAD_INTERVALS:
        assert not _agent_accepts(check, value), f"{value!r}: the agent takes it, move it to INTERVALS"
        assert not schema(value), value
    # Durations in the agent's syntax, at random: whatever the schema takes, the agent takes.
    rng = random.Random(8)
    taken = 0
    for _ in range(300):
        parts = []
        for unit in ("h", "m", "s", "ms"):
            if rng.random() < 0.5:
                number = str(rng.choice([0, 1, 5, 59, 60, 719, 720, 721, 43200, 2592000, rng.randrange(100_000)]))
                if unit != "ms" and rng.random() < 0.3:
                    number += "." + str(rng.randrange(1000))
                parts.append(number + unit)
        value = "".join(parts)
        if schema(value):
            taken += 1
            assert _agent_accepts(check, value), value
    assert taken > 20


def test_schema_takes_exactly_the_label_names_the_agent_takes(schema_accepts):
    from dijkwacht.targets import RESERVED_LABELS, InvalidTarget, check_label_name

    for name in [*sorted(RESERVED_LABELS), "__name__", "__x", "_x", "sector", "owner", "Region2", "2x", "a-b", "a.b", ""]:
        try:
            check_label_name(name)
            agent = True
        except InvalidTarget:
            agent = False
        assert schema_accepts({"targets": [{"domain": "a.nl", "labels": {name: "v"}}]}) == agent, name


# --------------------------------------------------------------------------
# Rendered
# --------------------------------------------------------------------------

FULL_VALUES = {
    "image": {"digest": "sha256:" + "ab" * 32},
    "replicas": 2,
    "targets": [
        {"domain": "gemeente.nl", "labels": {"sector": "municipality", "owner": 'team "a"'}, "hosts": ["portal", "cdn.example.com."]},
        {"domain": "waterschap.nl"},
    ],
    "config": {
        "agent": {"nameservers": ["9.9.9.9:53"], "dns_timeout": 1.5, "concurrency": 32, "http_probe": True},
        "daemon": {"interval": "30m", "confirmations": 3},
        "detectors": {"cdn": {"hosts": ["login"]}, "hosting": {"ptr_fallback": False}},
        "extraToml": '[agent]\nlog_level = "debug"\ndns_tries = 3\n[detectors.email]\nextra_selectors = ["k1"]\n',
    },
    "catalog": {"local.toml": '[providers.lokaal]\nname = "Lokaal"\noperator = "Lokaal B.V."\nparent = "Lokaal B.V."\njurisdiction = "NL"\nsource = "https://lokaal.example"\n'},
    "targetsFrom": {"configMap": "more-targets"},
    "serviceMonitor": {"enabled": True, "additionalLabels": {"release": "kps"}},
    "prometheusRule": {"enabled": True},
    "grafanaDashboards": {"enabled": True},
    "webConfig": {"secretName": "dijkwacht-web"},
    "lifecycle": {"enabled": True},
    "extraArgs": ["--config.reload-interval", "10s"],
    "extraEnv": [{"name": "TZ", "value": "Europe/Amsterdam"}],
    "extraVolumes": [{"name": "official", "configMap": {"name": "official-ip-lists"}}],
    "extraVolumeMounts": [{"name": "official", "mountPath": "/srv/official", "readOnly": True}],
    "dataUpdate": {"from": "/srv/official", "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]},
    "dnsPolicy": "None",
    "dnsConfig": {"nameservers": ["192.0.2.53"]},
    "priorityClassName": "monitoring",
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "dijkwacht"}}}],
    "tolerations": [{"key": "monitoring", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}},
    "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    "service": {"ipFamilyPolicy": "PreferDualStack"},
    "probes": {"httpHeaders": [{"name": "Authorization", "value": "Basic cHJvbTpzZWNyZXQ="}]},
}


def test_helm_lint():
    lint()
    lint(FULL_VALUES)


def pod_spec(objs) -> dict:
    return objs[("StatefulSet", "rel-dijkwacht")]["spec"]["template"]["spec"]


def containers(objs) -> dict[str, dict]:
    spec = pod_spec(objs)
    return {f"{kind}/{c['name']}": c for kind in ("containers", "initContainers") for c in spec.get(kind, [])}


def rendered_config(objs) -> dict:
    return tomllib.loads(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"])


def test_helm_template_defaults():
    objs = render()
    validate(objs)
    kinds = sorted(k for k, _ in objs)
    assert kinds == ["ConfigMap", "PodDisruptionBudget", "Service", "Service", "ServiceAccount", "StatefulSet"]
    sts = objs[("StatefulSet", "rel-dijkwacht")]["spec"]
    assert sts["replicas"] == 1 and sts["serviceName"] == "rel-dijkwacht-headless"
    assert sts["template"]["metadata"].get("annotations") is None  # nothing that rolls the pod on a config change
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state" and claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    c = containers(objs)
    assert set(c) == {"containers/dijkwacht", "containers/data-update", "initContainers/data-update"}
    agent = c["containers/dijkwacht"]
    assert agent["args"] == ["--config", "/etc/dijkwacht/config/dijkwacht.toml"]  # one shard: no --shard
    assert agent["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert agent["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert agent["ports"][0]["containerPort"] == 9849
    assert not any("subPath" in m for m in agent["volumeMounts"]), "subPath mounts never see ConfigMap updates"
    assert c["containers/data-update"]["args"][-2:] == ["--every", "24h"]
    cfg = rendered_config(objs)
    assert cfg["daemon"] == {"listen": ":9849", "state_path": "/var/lib/dijkwacht/state.db", "interval": "15m", "confirmations": 2}
    assert cfg["agent"]["home"] == ["EU"] and cfg["agent"]["data_dir"] == "/var/lib/dijkwacht/ip-ranges"
    assert "targets_dir" not in cfg["agent"]


def test_pods_meet_the_restricted_pod_security_standard():
    for values in (None, FULL_VALUES):
        objs = render(values)
        spec = pod_spec(objs)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for name, c in containers(objs).items():
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), name
            assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True, name
        assert all(set(v) & {"configMap", "secret", "emptyDir", "projected", "persistentVolumeClaim"} for v in spec["volumes"])


def test_helm_template_all_features(tmp_path):
    objs = render(FULL_VALUES)
    validate(objs)
    c = containers(objs)
    agent = c["containers/dijkwacht"]
    assert agent["image"] == "ghcr.io/example/dijkwacht@sha256:" + "ab" * 32
    assert agent["args"] == ["--config", "/etc/dijkwacht/config/dijkwacht.toml", "--shard", "$(POD_NAME)/2",
                             "--web.config.file", "/etc/dijkwacht/web/web-config.yml", "--web.enable-lifecycle",
                             "--config.reload-interval", "10s"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in agent["env"]
    assert {"name": "TZ", "value": "Europe/Amsterdam"} in agent["env"]
    assert {"name": "official", "mountPath": "/srv/official", "readOnly": True} in agent["volumeMounts"]
    assert "httpHeaders" not in agent["livenessProbe"]["httpGet"] and agent["readinessProbe"]["httpGet"]["httpHeaders"]
    for name in ("containers/data-update", "initContainers/data-update"):
        assert c[name]["args"][-2:] == ["--every", "24h"] or c[name]["args"][-2:] == ["--from", "/srv/official"]
        assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in c[name]["env"]
    spec = pod_spec(objs)
    assert spec["dnsPolicy"] == "None" and spec["priorityClassName"] == "monitoring"
    assert spec["topologySpreadConstraints"] and spec["tolerations"] and spec["affinity"]
    (projected,) = [v["projected"]["sources"] for v in spec["volumes"] if v["name"] == "targets"]
    assert projected == [{"configMap": {"name": "rel-dijkwacht-targets-0"}}, {"configMap": {"name": "rel-dijkwacht-targets-1"}},
                         {"configMap": {"name": "more-targets"}}]

    cfg = rendered_config(objs)
    assert cfg["agent"]["log_level"] == "debug" and cfg["agent"]["dns_tries"] == 3  # from extraToml, into [agent]
    assert cfg["agent"]["concurrency"] == 32 and cfg["agent"]["dns_timeout"] == 1.5
    assert cfg["agent"]["catalog"] == ["/etc/dijkwacht/config/local.toml"]
    assert cfg["detectors"] == {"cdn": {"hosts": ["login"]}, "hosting": {"ptr_fallback": False}, "email": {"extra_selectors": ["k1"]}}
    assert cfg["daemon"]["interval"] == "30m" and cfg["daemon"]["confirmations"] == 3

    # The agent accepts what the chart renders: the config, the catalog file and the targets
    # ConfigMaps, laid out as the pod mounts them.
    config_dir, targets_dir = tmp_path / "config", tmp_path / "targets"
    config_dir.mkdir()
    targets_dir.mkdir()
    (tmp_path / "state" / "ip-ranges").mkdir(parents=True)  # the data-update init container's
    for key, text in objs[("ConfigMap", "rel-dijkwacht")]["data"].items():
        text = text.replace("/etc/dijkwacht/config", str(config_dir)).replace("/etc/dijkwacht/targets", str(targets_dir))
        (config_dir / key).write_text(text.replace("/var/lib/dijkwacht", str(tmp_path / "state")), encoding="utf-8")
    for b in range(2):
        (key, text), = objs[("ConfigMap", f"rel-dijkwacht-targets-{b}")]["data"].items()
        (targets_dir / key).write_text(text, encoding="utf-8")
    check_config(config_dir / "dijkwacht.toml")
    from dijkwacht.config import load_config

    loaded = load_config(config_dir / "dijkwacht.toml")
    assert {(t.domain, tuple(sorted(t.labels.items())), t.hosts) for t in loaded.targets} == {
        ("gemeente.nl", (("owner", 'team "a"'), ("sector", "municipality")), ("portal", "cdn.example.com.")), ("waterschap.nl", (), ())}

    sm = objs[("ServiceMonitor", "rel-dijkwacht")]
    assert sm["metadata"]["labels"]["release"] == "kps"
    # instance is the pod's name, which a recreated pod keeps (its address changes): else every
    # series starts again and each move alert in its window fires a second time.
    assert sm["spec"]["endpoints"][0]["relabelings"][0] == {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"}
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    metrics_services = [o for (k, _), o in objs.items() if k == "Service" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "metrics"]
    assert [s["metadata"]["name"] for s in metrics_services] == ["rel-dijkwacht"], "each shard must be scraped once"
    assert objs[("PrometheusRule", "rel-dijkwacht")]["spec"]["groups"] == load_yaml(CHART / "files" / "rules.yml")["groups"]
    dashboards = objs[("ConfigMap", "rel-dijkwacht-dashboards")]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1" and len(dashboards["data"]) == 4


def test_network_policy_allows_https_only_for_downloads_and_probes():
    def egress_ports(values):
        policy = render({"networkPolicy": {"enabled": True}, **values})[("NetworkPolicy", "rel-dijkwacht")]
        validate({("NetworkPolicy", "x"): policy})
        return [sorted(p["port"] for p in rule["ports"]) for rule in policy["spec"]["egress"]]

    assert egress_ports({}) == [[53, 53], [443]]
    assert egress_ports({"dataUpdate": {"from": "/srv/official"}}) == [[53, 53]]
    assert egress_ports({"dataUpdate": {"initContainer": {"enabled": False}, "sidecar": {"enabled": False}}}) == [[53, 53]]
    assert egress_ports({"dataUpdate": {"from": "/srv/x"}, "config": {"agent": {"http_probe": True}}}) == [[53, 53], [80, 443]]


def test_config_and_target_changes_do_not_roll_the_pods():
    def pod_template(values):
        return render(values)[("StatefulSet", "rel-dijkwacht")]["spec"]["template"]

    base = {"targets": [{"domain": "a.nl"}]}
    same = pod_template(base)
    assert pod_template({"targets": [{"domain": "b.nl", "labels": {"x": "y"}}]}) == same
    assert pod_template({**base, "config": {"agent": {"log_level": "debug"}, "daemon": {"interval": "1h"}}}) == same
    # What the agent cannot reload is in the pod template, so it rolls the pods by itself.
    assert pod_template({**base, "containerPort": 9850}) != same
    assert pod_template({**base, "webConfig": {"secretName": "web"}}) != same


@pytest.mark.parametrize(("values", "where"), [
    ({"replica": 4}, "'replica' not allowed"),
    ({"config": {"agent": {"dns_timout": 2}}}, "'dns_timout' not allowed"),
    ({"config": {"daemon": {"listen": ":1"}}}, "'listen' not allowed"),
    ({"config": {"agent": {"concurrency": 0}}}, "/config/agent/concurrency"),
    ({"config": {"agent": {"log_level": "verbose"}}}, "/config/agent/log_level"),
    ({"config": {"daemon": {"interval": "15 minutes"}}}, "/config/daemon/interval"),
    ({"targets": [{"domian": "a.nl"}]}, "/targets/0"),
    ({"targets": [{"domain": "a.nl", "labels": {"target": "x"}}]}, "invalid propertyName 'target'"),
    ({"targets": [{"domain": "a.nl", "hosts": "portal"}]}, "/targets/0/hosts"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"dataUpdate": {"sidecar": {"evry": "1h"}}}, "'evry' not allowed"),
    ({"config": {"plugins": {"disabel": ["video"]}}}, "'disabel' not allowed"),
    ({"config": {"daemon": {"interval": "500ms"}}}, "/config/daemon/interval"),
    ({"targets": [{"domain": "a.nl", "labels": {"job": "x"}}]}, "invalid propertyName 'job'"),
])
def test_values_typos_are_refused_by_the_schema(values, where):
    message = render_error(values)
    assert "schema" in message and where in message, message


def test_plugins_settings_from_values(tmp_path):
    objs = render({"config": {"plugins": {"disable": ["video"]}, "extraToml": "[plugins]\nstrict = true\n"}})
    cfg = rendered_config(objs)
    assert cfg["plugins"] == {"disable": ["video"], "strict": True}
    config = tmp_path / "dijkwacht.toml"
    config.write_text(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"], encoding="utf-8")
    check_config(config)  # the agent takes them: "video" is an installed plugin
    assert rendered_config(render())["plugins"] == {"disable": [], "strict": False}


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "no-sidecar"])
def test_without_the_init_container_the_agent_creates_and_seeds_its_data_dir(tmp_path, sidecar):
    """The agent refuses a data_dir that does not exist, and only the init container made the
    chart's: without it the pod would crash-loop. Run the agent container's command with the
    pod's paths moved into tmp_path and a `dijkwacht` that checks the config instead of running."""
    objs = render({"dataUpdate": {"initContainer": {"enabled": False}, "sidecar": {"enabled": sidecar}}})
    validate(objs)
    c = containers(objs)
    assert "initContainers/data-update" not in c and ("containers/data-update" in c) is sidecar
    agent = c["containers/dijkwacht"]
    moved = {"/usr/share/dijkwacht/ip-ranges": tmp_path / "snapshot", "/var/lib/dijkwacht": tmp_path / "state", "/etc/dijkwacht/config": tmp_path / "config"}

    def local(text: str) -> str:
        for pod_path, path in moved.items():
            text = text.replace(pod_path, str(path))
        return text

    for path in moved.values():
        path.mkdir()
    (tmp_path / "snapshot" / "amazon.txt").write_text("# provider: amazon\n192.0.2.0/24\n")
    config = tmp_path / "config" / "dijkwacht.toml"
    config.write_text(local(objs[("ConfigMap", "rel-dijkwacht")]["data"]["dijkwacht.toml"]), encoding="utf-8")
    refused = run([*DIJKWACHT, "check-config", str(config)], timeout=60)
    assert refused.returncode == 2 and "agent.data_dir: no such directory" in refused.stderr, refused.stderr  # as the pod starts

    stub = tmp_path / "bin" / "dijkwacht"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\n[ "$1" = run ] && [ "$2" = --config ] || exit 64\nexec {shlex.join(DIJKWACHT)} check-config "$3"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin", **{e["name"]: local(e["value"]) for e in agent["env"] if "value" in e}}
    res = subprocess.run([local(a) for a in agent["command"] + agent["args"]], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "1 IP prefixes" in res.stdout, res.stdout + res.stderr
    assert (tmp_path / "state" / "ip-ranges" / "amazon.txt").read_text() == "# provider: amazon\n192.0.2.0/24\n"


@pytest.mark.parametrize(("values", "message"), [
    ({"config": {"extraToml": "[agent\n"}}, "config.extraToml is not valid TOML"),
    ({"config": {"extraToml": '[[targets]]\ndomain = "a.nl"\n'}}, "[targets] is not a table of dijkwacht.toml"),
    ({"replicas": 2, "persistence": {"existingClaim": "old"}}, "replicas: 1 only"),
])
def test_helm_template_rejects_bad_values(values, message):
    assert message in render_error(values)


# --------------------------------------------------------------------------
# Scale: 50,000 targets over 4 shards
# --------------------------------------------------------------------------

API_OBJECT_LIMIT = 1024 * 1024  # bytes; etcd's default request limit is 1.5 MiB, ConfigMap data 1 MiB


def test_50000_targets_over_4_shards_stay_under_the_object_limit():
    """One test, not a fixture shared by several: pytest keeps fixture values referenced from
    its test items, and 50,000 targets kept alive slow every later test's garbage collection."""
    from dijkwacht.shard import shard_of

    targets = [{"domain": f"gemeente-{i:05d}.nl", "labels": {"sector": "municipality", "owner": f"team-{i % 50}"}} for i in range(50_000)]
    objs = render({"targets": targets, "replicas": 4})
    validate(objs)
    sizes = {key: len(json.dumps(obj)) for key, obj in objs.items()}
    assert max(sizes.values()) < API_OBJECT_LIMIT, max(sizes.items(), key=lambda kv: kv[1])
    sts = objs[("StatefulSet", "rel-dijkwacht")]
    assert sts["spec"]["replicas"] == 4
    assert sts["spec"]["template"]["spec"]["containers"][0]["args"][2:4] == ["--shard", "$(POD_NAME)/4"]

    # Each target ConfigMap holds the targets of one shard, by the agent's own hash.
    count = len([k for k in objs if k[1].startswith("rel-dijkwacht-targets-")])
    assert count % 4 == 0 and count > 4
    seen = []
    for b in range(count):
        cm = objs[("ConfigMap", f"rel-dijkwacht-targets-{b}")]
        (text,) = cm["data"].values()
        domains = [t["domain"] for t in tomllib.loads(text)["targets"]]
        assert {shard_of(d, count) for d in domains} == {b}
        assert {shard_of(d, 4) for d in domains} == {b % 4} and cm["metadata"]["annotations"]["dijkwacht.io/shard"] == f"{b % 4}/4"
        seen += domains
    assert sorted(seen) == sorted(t["domain"] for t in targets)


@pytest.mark.parametrize(("status", "ignore", "exit_code"), [(0, True, 0), (3, False, 0), (1, True, 0), (1, False, 1)])
def test_init_container_seeds_from_the_snapshot_and_tolerates_what_it_should(tmp_path, status, ignore, exit_code):
    """The init container's script, run by /bin/sh with a stand-in `dijkwacht` that exits with `status`."""
    objs = render({"dataUpdate": {"initContainer": {"ignoreFailure": ignore}}})
    init = containers(objs)["initContainers/data-update"]
    script, *argv = init["args"]
    snapshot, data, bin_dir = tmp_path / "snapshot", tmp_path / "state" / "ip-ranges", tmp_path / "bin"
    snapshot.mkdir()
    bin_dir.mkdir()
    (snapshot / "amazon.txt").write_text("# snapshot\n192.0.2.0/24\n")
    (snapshot / "google.txt").write_text("# snapshot\n198.51.100.0/24\n")
    (snapshot / "ip2asn-combined.tsv.gz").write_bytes(b"the IP-to-AS table")
    data.mkdir(parents=True)
    (data / "google.txt").write_text("# newer, on the volume\n")
    stub = bin_dir / "dijkwacht"
    stub.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "called"}\nexit {status}\n')
    stub.chmod(0o755)
    script = script.replace("/usr/share/dijkwacht/ip-ranges", str(snapshot))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DATA_DIR": str(data)}
    res = subprocess.run(["/bin/sh", "-c", script, *argv], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == exit_code, res.stderr
    assert (tmp_path / "called").read_text().split() == ["data", "update", "--data-dir", "/var/lib/dijkwacht/ip-ranges"]
    assert (data / "amazon.txt").read_text() == "# snapshot\n192.0.2.0/24\n"  # seeded
    assert (data / "ip2asn-combined.tsv.gz").read_bytes() == b"the IP-to-AS table"  # attribution by AS works offline too
    assert (data / "google.txt").read_text() == "# newer, on the volume\n"  # never overwritten by the snapshot
    assert ("failed" in res.stderr) is (status == 1)
