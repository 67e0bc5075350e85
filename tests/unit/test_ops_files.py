"""The duty staff's files agree with the code: every metric an alert or the dashboard uses is
exported, every alert has a runbook section, the configs parse."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import Counter, Gauge, Histogram

from runtime import metrics
from tests.paths import ROOT

OPS = ROOT / "ops"
METRIC = re.compile(r"\bcchc_[a-z_]+")


def exported_names() -> set[str]:
    """Every sample name runtime/metrics.py exports (counters end in _total, histograms in _bucket…)."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(f"{value._name}_total")
        elif isinstance(value, Histogram):
            names |= {f"{value._name}{s}" for s in ("_bucket", "_count", "_sum")}
        elif isinstance(value, Gauge):
            names.add(value._name)
    return names


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load((OPS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads((OPS / "grafana" / "dashboard.json").read_text())
    return [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


def test_every_metric_used_is_exported() -> None:
    exported = exported_names()
    used = {name for rule in alerts() for name in METRIC.findall(rule["expr"])}
    used |= {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used, "no metric found: the parsing is wrong"
    assert used - exported == set()


def test_every_alert_has_a_runbook_section_and_link() -> None:
    runbook = (ROOT / "RUNBOOK.md").read_text()
    sections = set(re.findall(r"^## (Cchc\w+)$", runbook, re.M))
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)) >= 8
    assert set(names) <= sections
    for rule in alerts():
        assert rule["annotations"]["runbook"] == f"RUNBOOK.md#{rule['alert'].lower()}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert "Ý nghĩa" in runbook.split(f"## {rule['alert']}")[1].split("\n## ")[0]


def test_every_alert_has_a_promtool_unit_test() -> None:
    tests = yaml.safe_load((OPS / "alerts.test.yml").read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert tested == {rule["alert"] for rule in alerts()}


def test_metric_names_follow_prometheus_conventions() -> None:
    for name in exported_names():
        assert name.startswith("cchc_")
    for value in vars(metrics).values():
        if isinstance(value, Histogram) and "duration" in value._name:
            assert value._name.endswith("_seconds")


def test_compose_and_prometheus_configs_parse() -> None:
    compose = yaml.safe_load((OPS / "docker-compose.yml").read_text())
    assert {"valkey", "postgres", "ingest-1", "ingest-2", "scorer-1", "scorer-2", "results", "desk", "prometheus",
            "grafana"} <= set(compose["services"])
    assert "--appendfsync" in compose["services"]["valkey"]["command"]
    assert all(p.startswith("127.0.0.1:") for s in compose["services"].values() for p in s.get("ports", []))
    scraped = {t for job in yaml.safe_load((OPS / "prometheus.compose.yml").read_text())["scrape_configs"]
               for c in job["static_configs"] for t in c["targets"]}
    assert {t.split(":")[0] for t in scraped} == {"ingest-1", "ingest-2", "scorer-1", "scorer-2", "results", "desk"}
    # Prometheus scrapes each process's metrics port, never a public one (DESIGN §3), which is not published
    services = compose["services"]
    for target in scraped:
        name, port = target.split(":")
        command = services[name]["command"]
        assert command[command.index("--metrics-port") + 1] == port, target
        assert not [p for p in services[name].get("ports", []) if p.endswith(f":{port}")], target
    assert services["ingest-1"]["environment"]["CCHC_METRICS_HOST"] == "0.0.0.0"  # the compose network only
