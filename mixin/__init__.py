"""dijkwacht's monitoring mixin: the ONE source of its Prometheus recording and alerting rules,
Alertmanager example, Grafana dashboards and Grafana provisioning files.

Everything an operator may want to adapt (job selector, the target-label key to group by,
thresholds, durations) is in `config.Config`; `python -m mixin` writes the files, and a test
fails when the committed files differ from what it writes.
"""
