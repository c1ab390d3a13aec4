#!/usr/bin/env python3
"""Consistency checks of deploy/ and compose/ that no linter makes (run by deploy/check.sh).

- Every metric the alert rules and the Grafana dashboard query is one AutoCache exports.
- The Grafana provisioning files parse, and the data source and dashboard path they name are
  the ones the dashboard and compose/docker-compose.yml use.
- compose/docker-compose.yml agrees with the config files it mounts: client, admin and cluster
  ports, the published ports, health checks and Prometheus targets; every mounted file exists.
- deploy/k8s/kustomization.yaml lists every manifest of the directory, and the ConfigMap's
  config files parse and use the ports the pods and Services declare.

Prints one line per problem and exits 1 if there is any.
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
problems = []


def problem(msg):
    problems.append(msg)


# The metric families AutoCache exports (docs/operations.md#metrics); histograms also have
# _bucket, _sum and _count series.
COUNTERS_GAUGES = {
    "autocache_commands_total",
    "autocache_connections",
    "autocache_connections_received_total",
    "autocache_connections_rejected_total",
    "autocache_network_bytes_total",
    "autocache_network_bytes_received_total",
    "autocache_network_bytes_sent_total",
    "autocache_tiered_hit_rate",
    "autocache_uptime_seconds",
    "autocache_info",
    "autocache_cache_hits_total",
    "autocache_cache_misses_total",
    "autocache_keys_total",
    "autocache_keys_expired_total",
    "autocache_keys_evicted_total",
    "autocache_memory_bytes",
    "autocache_cluster_state",
    "autocache_cluster_nodes",
    "autocache_cluster_slots_assigned",
    "autocache_cluster_slots_migrating",
    "autocache_tiered_keys",
    "autocache_tiered_bytes",
    "autocache_tiered_migrations_total",
    "autocache_tier_hits_total",
    "autocache_backend_errors_total",
    "autocache_redirects_total",
    "autocache_topology_refreshes_total",
    "autocache_backends",
    "autocache_hotkey_cache_lookups_total",
    "autocache_hotkey_invalidations_total",
    "autocache_hotkeys",
}
HISTOGRAMS = {
    "autocache_command_duration_seconds",
    "autocache_backend_request_duration_seconds",
    "autocache_fanout_width",
}
KNOWN = COUNTERS_GAUGES | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
METRIC = re.compile(r"\bautocache_[a-z0-9_]+")


def check_metrics(where, expr):
    for name in METRIC.findall(expr):
        if name not in KNOWN:
            problem(f"{where}: unknown metric {name} in: {expr.strip()}")
        elif name in {h + "_bucket" for h in HISTOGRAMS} and "le" not in expr:
            problem(f"{where}: {name} used without aggregating by le: {expr.strip()}")


def load_yaml(path):
    try:
        with open(path) as f:
            return list(yaml.safe_load_all(f))
    except (OSError, yaml.YAMLError) as e:
        problem(f"{path.relative_to(ROOT)}: {e}")
        return []


def alerts():
    path = ROOT / "deploy/prometheus/alerts.yml"
    (doc,) = load_yaml(path) or [None]
    rules = [r for g in (doc or {}).get("groups", []) for r in g.get("rules", [])]
    if not rules:
        problem(f"{path}: no rules")
    for r in rules:
        check_metrics(f"alert {r.get('alert')}", r.get("expr", ""))
    names = {r.get("alert") for r in rules}
    for wanted in (
        "AutoCacheHighP99Latency",
        "AutoCacheLowHitRate",
        "AutoCacheNodeDown",
        "AutoCacheMemoryHigh",
        "AutoCacheTooManyConnections",
        "AutoCacheSlotsUnassigned",
        "AutoCacheMigrationStuck",
    ):
        if wanted not in names:
            problem(f"alerts.yml: alert {wanted} is missing")


def grafana(compose):
    gdir = ROOT / "deploy/grafana"
    board_path = gdir / "dashboards/autocache.json"
    try:
        board = json.loads(board_path.read_text())
    except (OSError, ValueError) as e:
        problem(f"{board_path}: {e}")
        return
    ids = [p.get("id") for p in board.get("panels", [])]
    if len(ids) != len(set(ids)):
        problem("dashboard: panel ids are not unique")
    for p in board.get("panels", []):
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24:
            problem(f"dashboard panel {p.get('title')}: wider than the grid")
        if p.get("type") == "row":
            continue
        if not p.get("targets"):
            problem(f"dashboard panel {p.get('title')}: no query")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problem(f"dashboard panel {p.get('title')}: query not on the $datasource variable")
            check_metrics(f"dashboard panel {p.get('title')}", t.get("expr", ""))
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    default_ds = variables.get("datasource", {}).get("current", {}).get("value")

    (ds_doc,) = load_yaml(gdir / "provisioning/datasources/autocache.yml") or [{}]
    sources = ds_doc.get("datasources", []) if ds_doc else []
    if ds_doc.get("apiVersion") != 1 or len(sources) != 1:
        problem("grafana datasource provisioning: expected apiVersion 1 and one data source")
    elif sources[0].get("uid") != default_ds or sources[0].get("type") != "prometheus":
        problem(
            f"grafana: the dashboard preselects data source {default_ds}, "
            f"provisioning defines {sources[0].get('uid')}"
        )
    else:
        url = sources[0].get("url", "")
        if not url.startswith("http://prometheus:"):
            problem(f"grafana data source url {url} is not the compose service prometheus")

    (prov_doc,) = load_yaml(gdir / "provisioning/dashboards/autocache.yml") or [{}]
    providers = prov_doc.get("providers", []) if prov_doc else []
    if prov_doc.get("apiVersion") != 1 or len(providers) != 1:
        problem("grafana dashboard provisioning: expected apiVersion 1 and one provider")
        return
    path = providers[0].get("options", {}).get("path")
    mounts = compose.get("services", {}).get("grafana", {}).get("volumes", [])
    targets = {m.split(":")[1]: m.split(":")[0] for m in mounts}
    if targets.get(path) != "../deploy/grafana/dashboards":
        problem(f"grafana: dashboards are provisioned from {path}, compose mounts {targets}")
    if targets.get("/etc/grafana/provisioning") != "../deploy/grafana/provisioning":
        problem("grafana: compose does not mount deploy/grafana/provisioning")


def port_of(url):
    m = re.search(r":(\d+)/", url)
    return int(m.group(1)) if m else None


def compose_checks():
    cdir = ROOT / "compose"
    (compose,) = load_yaml(cdir / "docker-compose.yml") or [{}]
    services = compose.get("services", {})
    (prom,) = load_yaml(cdir / "prometheus.yml") or [{}]
    prom_targets = {
        job["job_name"]: {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        for job in prom.get("scrape_configs", [])
    }
    for name, svc in services.items():
        for m in svc.get("volumes", []):
            src = m.split(":")[0]
            if src.startswith(".") and not (cdir / src).exists():
                problem(f"compose service {name}: mounts {src}, which does not exist")
        cmd = svc.get("command") or []
        if not cmd or cmd[0] not in ("autocache-shard", "autocache-proxy"):
            continue
        role = cmd[0].removeprefix("autocache-")
        mount = next((m for m in svc.get("volumes", []) if m.endswith(".toml:ro")), None)
        if mount is None:
            problem(f"compose service {name}: no config file mounted")
            continue
        cfg = tomllib.loads((cdir / mount.split(":")[0]).read_text())
        admin = cfg.get("admin-port")
        health = " ".join(svc.get("healthcheck", {}).get("test", []))
        if port_of(health) != admin:
            problem(f"compose {name}: health check on port {port_of(health)}, admin-port is {admin}")
        if f"{name}:{admin}" not in prom_targets.get(f"autocache-{role}", set()):
            problem(f"compose/prometheus.yml: job autocache-{role} does not scrape {name}:{admin}")
        env = svc.get("environment", {})
        if role == "proxy":
            published = [p.split(":") for p in svc.get("ports", [])]
            if [str(cfg.get("port"))] * 2 not in published:
                problem(f"compose {name}: port {cfg.get('port')} is not published as itself")
            for seed in env.get("AUTOCACHE_SEEDS", "").split(","):
                host, _, port = seed.partition(":")
                scfg = services.get(host, {}).get("volumes", [])
                sfile = next((m.split(":")[0] for m in scfg if m.endswith(".toml:ro")), None)
                if sfile is None or tomllib.loads((cdir / sfile).read_text()).get("port") != int(port):
                    problem(f"compose {name}: seed {seed} is not a shard's client port")
        else:
            if str(cfg.get("cluster-enabled")) not in ("yes", "True", "true"):
                problem(f"compose {name}: not in cluster mode")
            for seed in filter(None, env.get("AUTOCACHE_CLUSTER_SEEDS", "").split(",")):
                port = int(seed.rpartition(":")[2])
                if port not in {17001, 17002, 17003}:
                    problem(f"compose {name}: cluster seed {seed} is no shard's cluster-port")
    if {n for n in services if n.startswith("shard-")} != {"shard-1", "shard-2", "shard-3"}:
        problem("compose: expected shards shard-1, shard-2, shard-3")
    return compose


def k8s():
    kdir = ROOT / "deploy/k8s"
    (kust,) = load_yaml(kdir / "kustomization.yaml") or [{}]
    listed = set(kust.get("resources", []))
    present = {p.name for p in kdir.glob("*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        problem(f"kustomization.yaml lists {sorted(listed)}, the directory has {sorted(present)}")
    docs = [d for p in sorted(present) for d in load_yaml(kdir / p) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    cm = by_kind.get(("ConfigMap", "autocache-config"), {}).get("data", {})
    try:
        shard = tomllib.loads(cm.get("shard.toml", ""))
        proxy = tomllib.loads(cm.get("proxy.toml", ""))
    except tomllib.TOMLDecodeError as e:
        problem(f"configmap.yaml: {e}")
        return
    if "start-shard.sh" not in cm or f":{shard.get('cluster-port')}" not in cm["start-shard.sh"]:
        problem("configmap.yaml: start-shard.sh does not use the shard's cluster-port")
    for kind, name, cfg in (
        ("StatefulSet", "autocache-shard", shard),
        ("Deployment", "autocache-proxy", proxy),
    ):
        pod = by_kind.get((kind, name), {}).get("spec", {}).get("template", {})
        ports = {p["name"]: p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
        if ports.get("redis") != cfg.get("port") or ports.get("admin") != cfg.get("admin-port"):
            problem(f"{kind} {name}: container ports {ports} do not match its config file")
        if pod["metadata"]["annotations"].get("prometheus.io/port") != str(cfg.get("admin-port")):
            problem(f"{kind} {name}: prometheus.io/port is not the admin port")
        if "cluster-port" in cfg and ports.get("cluster-bus") != cfg["cluster-port"]:
            problem(f"{kind} {name}: cluster-bus port is not the config's cluster-port")
    seeds = next(
        e["value"]
        for c in by_kind[("Deployment", "autocache-proxy")]["spec"]["template"]["spec"]["containers"]
        for e in c["env"]
        if e["name"] == "AUTOCACHE_SEEDS"
    )
    if seeds != f"autocache-shard:{shard.get('port')}":
        problem(f"proxy seeds {seeds} are not the shard Service's client port")


def main():
    alerts()
    compose = compose_checks()
    grafana(compose)
    k8s()
    for p in problems:
        print(f"deploy/check.py: {p}", file=sys.stderr)
    print(f"deploy/check.py: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
