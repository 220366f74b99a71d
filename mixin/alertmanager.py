"""An Alertmanager example: sovereignty alerts grouped by category and provider, agent alerts
by agent, and the alerts that explain others (a failing resolver, detector or state database)
inhibiting them."""

from __future__ import annotations

from .config import Config

MOVES = "DijkwachtDependencyMovedForeign|DijkwachtDependencyMovedBetweenForeign|DijkwachtOwnershipMadeForeign"
PER_TARGET = "DijkwachtTargetScanFailing|DijkwachtTargetNotScanned"


def alertmanager(cfg: Config) -> dict:
    agent = list(cfg.agent_labels)
    return {
        "route": {
            "receiver": "ops",
            "group_by": ["alertname", *agent],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {
                    # One notification per category and new provider: an acquisition or a
                    # migration wave of many targets to one provider arrives as one message.
                    "matchers": [f'alertname=~"{MOVES}"'],
                    "group_by": ["alertname", "category", "to_provider"],
                    "receiver": "sovereignty",
                    "repeat_interval": "24h",
                },
                {"matchers": ['alertname=~"Dijkwacht.*"'], "receiver": "ops"},
            ],
        },
        "inhibit_rules": [
            {
                # A failing resolver explains every failing scan and every stale target of that agent.
                "source_matchers": ['alertname="DijkwachtResolverFailing"'],
                "target_matchers": [f'alertname=~"{PER_TARGET}|DijkwachtDetectorFailing|DijkwachtScansStalled"'],
                "equal": agent,
            },
            {
                "source_matchers": ['alertname="DijkwachtDetectorFailing"'],
                "target_matchers": ['alertname="DijkwachtTargetScanFailing"'],
                "equal": agent,
            },
            {
                "source_matchers": ['alertname="DijkwachtScansStalled"'],
                "target_matchers": ['alertname="DijkwachtTargetNotScanned"'],
                "equal": agent,
            },
            {
                # Scans whose results cannot be written are dropped: their targets go stale.
                "source_matchers": ['alertname="DijkwachtStateWriteFailing"'],
                "target_matchers": ['alertname=~"DijkwachtScansStalled|DijkwachtTargetNotScanned"'],
                "equal": agent,
            },
        ],
        "receivers": [
            {"name": "sovereignty", "webhook_configs": [{"url": "http://alert-receiver.example.internal/dijkwacht/sovereignty"}]},
            {"name": "ops", "webhook_configs": [{"url": "http://alert-receiver.example.internal/dijkwacht/ops"}]},
        ],
    }
