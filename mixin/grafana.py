"""Grafana provisioning: a Prometheus data source example, the dashboard provider, and
Grafana-managed alert rules equivalent to the Prometheus alerts (file-provisioning format)."""

from __future__ import annotations

from .config import Config, seconds
from .rules import alert_rules

DATASOURCE_UID = "dijkwacht-prometheus"
DASHBOARDS_PATH = "/var/lib/grafana/dashboards/dijkwacht"
# Any series the PromQL query returns is an alert instance, whatever its value: the same rule
# as Prometheus' (Grafana's own converter of Prometheus rules does it this way).
IS_SERIES = "is_number($A) || is_nan($A) || is_inf($A)"


def datasource(cfg: Config) -> dict:
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus (dijkwacht)",
            "uid": DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus.example.internal:9090",
            "jsonData": {"httpMethod": "POST", "timeInterval": "1m"},
        }],
    }


def dashboard_provider(cfg: Config) -> dict:
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "dijkwacht",
            "folder": cfg.grafana_folder,
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 60,
            "options": {"path": DASHBOARDS_PATH, "foldersFromFilesStructure": False},
        }],
    }


def _grafana_template(text: str) -> str:
    # Grafana names the query's value $values.A.Value; the rest of the template language is shared.
    return text.replace("$value ", "$values.A.Value ").replace("$value}", "$values.A.Value}")


def alerting(cfg: Config) -> dict:
    rules = []
    for group in alert_rules(cfg):
        for rule in group["rules"]:
            lookback = max(600, seconds(rule.get("for", "0s")) + 300)
            rules.append({
                "uid": rule["alert"].lower()[:40],
                "title": rule["alert"],
                "condition": "C",
                "data": [
                    {"refId": "A", "relativeTimeRange": {"from": lookback, "to": 0}, "datasourceUid": DATASOURCE_UID,
                     "model": {"refId": "A", "expr": rule["expr"], "instant": True, "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}}},
                    {"refId": "B", "datasourceUid": "__expr__", "model": {"refId": "B", "type": "math", "expression": IS_SERIES}},
                    {"refId": "C", "datasourceUid": "__expr__",
                     "model": {"refId": "C", "type": "threshold", "expression": "B", "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}},
                ],
                "noDataState": "OK",
                "execErrState": "Error",
                "for": rule.get("for", "0s"),
                "labels": dict(rule["labels"]),
                "annotations": {k: _grafana_template(v) for k, v in rule["annotations"].items()},
                "isPaused": False,
            })
    return {
        "apiVersion": 1,
        "groups": [{"orgId": 1, "name": "dijkwacht", "folder": cfg.grafana_folder, "interval": cfg.rule_interval or "1m", "rules": rules}],
    }
