#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/autocache.json, the AutoCache Grafana dashboard.

The dashboard is generated so that its queries stay readable and reviewable here; edit this
file, then run `python3 deploy/grafana/dashboard.py`. `--check` exits 1 when the committed JSON
differs from what this file generates (CI runs it). `--exprs` prints every PromQL query, one per
line, with the dashboard variables replaced by plain values (compose/local-up.sh sends them to a
real Prometheus to prove they evaluate).
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "autocache.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
RATE = "$__rate_interval"


def q(expr, legend="", ref="A"):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def targets(*pairs):
    return [q(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(pairs)]


def timeseries(title, unit, pairs, desc="", stack=False, w=8, h=8):
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets(*pairs),
        "_size": (w, h),
    }


def stat(title, unit, expr, desc="", thresholds=None, w=4, h=4):
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": targets((expr, "")),
        "_size": (w, h),
    }


def red_below(v):
    return [{"color": "red", "value": None}, {"color": "green", "value": v}]


def red_above(v):
    return [{"color": "green", "value": None}, {"color": "red", "value": v}]


def quantile(qv, metric, by, sel=SEL):
    return (
        f"histogram_quantile({qv}, sum by ({by}, le) "
        f"(rate({metric}_bucket{{{sel}}}[{RATE}])))"
    )


HITS = f'sum(rate(autocache_cache_hits_total{{{SEL}}}[{RATE}]))'
MISSES = f'sum(rate(autocache_cache_misses_total{{{SEL}}}[{RATE}]))'

ROWS = [
    (
        "Overview",
        [
            stat(
                "Commands/s",
                "ops",
                f'sum(rate(autocache_commands_total{{job="autocache-proxy", {SEL}}}[{RATE}]))',
                "Commands per second that clients sent to the proxies.",
            ),
            stat(
                "Hit rate",
                "percentunit",
                f"{HITS} / ({HITS} + {MISSES})",
                "Share of key lookups on the shards that found the key (either tier).",
                red_below(0.5),
            ),
            stat(
                "Keys",
                "short",
                f'sum(autocache_keys_total{{{SEL}}})',
                "Keys held by all shards, both tiers.",
            ),
            stat(
                "Memory used",
                "bytes",
                f'sum(autocache_memory_bytes{{type="used", {SEL}}})',
                "RAM tier usage of all shards, as counted against maxmemory.",
            ),
            stat(
                "Client connections",
                "short",
                f'sum(autocache_connections{{job="autocache-proxy", {SEL}}})',
                "Connections open on the proxies.",
            ),
            stat(
                "Errors/s",
                "ops",
                f'sum(rate(autocache_commands_total{{status="error", {SEL}}}[{RATE}]))',
                "Commands answered with an error, proxies and shards.",
                red_above(1),
            ),
            timeseries(
                "QPS by role",
                "ops",
                [(f'sum by (job) (rate(autocache_commands_total{{{SEL}}}[{RATE}]))', "{{job}}")],
                "Commands per second, proxies and shards.",
            ),
            timeseries(
                "QPS by command (proxies)",
                "ops",
                [
                    (
                        f'topk(10, sum by (cmd) (rate(autocache_commands_total{{job="autocache-proxy", {SEL}}}[{RATE}])))',
                        "{{cmd}}",
                    )
                ],
                "The ten busiest commands at the proxies.",
                stack=True,
            ),
            timeseries(
                "Latency p50 / p99",
                "s",
                [
                    (quantile(0.5, "autocache_command_duration_seconds", "job"), "p50 {{job}}"),
                    (quantile(0.99, "autocache_command_duration_seconds", "job"), "p99 {{job}}"),
                ],
                "Command latency inside the process (proxy: including the shard round trip).",
            ),
            timeseries(
                "Hit rate by shard",
                "percentunit",
                [
                    (
                        f"sum by (instance) (rate(autocache_cache_hits_total{{{SEL}}}[{RATE}])) / "
                        f"(sum by (instance) (rate(autocache_cache_hits_total{{{SEL}}}[{RATE}])) + "
                        f"sum by (instance) (rate(autocache_cache_misses_total{{{SEL}}}[{RATE}])))",
                        "{{instance}}",
                    )
                ],
            ),
            timeseries(
                "Keys by shard",
                "short",
                [(f"sum by (instance) (autocache_keys_total{{{SEL}}})", "{{instance}}")],
                stack=True,
            ),
            timeseries(
                "Memory by shard",
                "bytes",
                [
                    (
                        f'sum by (instance) (autocache_memory_bytes{{type="used", {SEL}}})',
                        "used {{instance}}",
                    ),
                    (
                        f'sum by (instance) (autocache_memory_bytes{{type="maxmemory", {SEL}}})',
                        "maxmemory {{instance}}",
                    ),
                    (
                        f'sum by (instance) (autocache_memory_bytes{{type="warm_cache", {SEL}}})',
                        "warm page cache {{instance}}",
                    ),
                ],
            ),
            timeseries(
                "Connections",
                "short",
                [
                    (f"sum by (instance) (autocache_connections{{{SEL}}})", "{{instance}}"),
                    (
                        f"sum by (instance) (rate(autocache_connections_rejected_total{{{SEL}}}[{RATE}]))",
                        "rejected/s {{instance}}",
                    ),
                ],
            ),
            timeseries(
                "Network",
                "Bps",
                [
                    (
                        f"sum by (job) (rate(autocache_network_bytes_received_total{{{SEL}}}[{RATE}]))",
                        "received {{job}}",
                    ),
                    (
                        f"sum by (job) (rate(autocache_network_bytes_sent_total{{{SEL}}}[{RATE}]))",
                        "sent {{job}}",
                    ),
                ],
                "Bytes read from and written to clients per second (a shard's clients include the proxies).",
            ),
            timeseries(
                "Expired / evicted keys",
                "ops",
                [
                    (f"sum(rate(autocache_keys_expired_total{{{SEL}}}[{RATE}]))", "expired"),
                    (f"sum(rate(autocache_keys_evicted_total{{{SEL}}}[{RATE}]))", "evicted"),
                ],
            ),
        ],
    ),
    (
        "Cluster",
        [
            stat(
                "Nodes alive",
                "short",
                f'max(autocache_cluster_nodes{{state="alive", {SEL}}})',
                "Cluster members the shards see alive (the highest view).",
            ),
            stat(
                "Nodes down",
                "short",
                f'max(autocache_cluster_nodes{{state="down", {SEL}}})',
                thresholds=red_above(1),
            ),
            stat(
                "Slots assigned",
                "short",
                f"min(autocache_cluster_slots_assigned{{{SEL}}})",
                "The lowest count any shard reports; 16384 when every slot has an owner.",
                red_below(16384),
            ),
            stat(
                "Slots migrating",
                "short",
                f"sum(autocache_cluster_slots_migrating{{{SEL}}})",
            ),
            stat(
                "Cluster state ok",
                "short",
                f"min(autocache_cluster_state{{{SEL}}})",
                "1 when every shard reports cluster_state:ok.",
                red_below(1),
            ),
            stat(
                "Proxies' known shards",
                "short",
                f'min(autocache_backends{{{SEL}}})',
            ),
            timeseries(
                "Members by state",
                "short",
                [(f"max by (state) (autocache_cluster_nodes{{{SEL}}})", "{{state}}")],
            ),
            timeseries(
                "Slots assigned / migrating",
                "short",
                [
                    (f"min(autocache_cluster_slots_assigned{{{SEL}}})", "assigned"),
                    (f"sum(autocache_cluster_slots_migrating{{{SEL}}})", "migrating"),
                ],
            ),
            timeseries(
                "Uptime",
                "s",
                [(f"autocache_uptime_seconds{{{SEL}}}", "{{instance}}")],
                "A drop to zero is a restart.",
            ),
        ],
    ),
    (
        "Tiers",
        [
            timeseries(
                "Keys per tier",
                "short",
                [(f"sum by (tier) (autocache_tiered_keys{{{SEL}}})", "{{tier}}")],
                stack=True,
            ),
            timeseries(
                "Bytes per tier",
                "bytes",
                [(f"sum by (tier) (autocache_tiered_bytes{{{SEL}}})", "{{tier}}")],
                stack=True,
            ),
            timeseries(
                "Promotions / demotions",
                "ops",
                [
                    (
                        f"sum by (direction) (rate(autocache_tiered_migrations_total{{{SEL}}}[{RATE}]))",
                        "{{direction}}",
                    )
                ],
                "Keys moved from disk to RAM (promote) and from RAM to disk (demote) per second.",
            ),
            timeseries(
                "Hits per tier",
                "ops",
                [
                    (
                        f"sum by (tier) (rate(autocache_tier_hits_total{{{SEL}}}[{RATE}]))",
                        "{{tier}}",
                    )
                ],
                "Reads served from RAM and from the warm tier (disk).",
                stack=True,
            ),
            timeseries(
                "Hit rate per tier (since start)",
                "percentunit",
                [
                    (
                        f'avg by (tier) (autocache_tiered_hit_rate{{job="autocache-shard", {SEL}}})',
                        "{{tier}}",
                    ),
                    (
                        f'avg(autocache_tiered_hit_rate{{job="autocache-proxy", tier="near", {SEL}}})',
                        "near cache (proxies)",
                    ),
                ],
                "autocache_tiered_hit_rate: the share of all key lookups since the process started "
                "(or CONFIG RESETSTAT) answered by each tier, averaged over the shards; ram + warm is "
                "the overall hit rate. The proxies' near cache: hits over near-cache lookups.",
            ),
            timeseries(
                "Warm-tier share of hits",
                "percentunit",
                [
                    (
                        f'sum(rate(autocache_tier_hits_total{{tier="warm", {SEL}}}[{RATE}])) / '
                        f"sum(rate(autocache_tier_hits_total{{{SEL}}}[{RATE}]))",
                        "warm",
                    )
                ],
            ),
            timeseries(
                "Keys per tier by shard",
                "short",
                [
                    (
                        f"sum by (instance, tier) (autocache_tiered_keys{{{SEL}}})",
                        "{{instance}} {{tier}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Proxy",
        [
            timeseries(
                "Backend latency p99",
                "s",
                [
                    (
                        quantile(0.99, "autocache_backend_request_duration_seconds", "backend"),
                        "{{backend}}",
                    )
                ],
                "Round trip from a proxy to each shard.",
            ),
            timeseries(
                "Backend latency p50",
                "s",
                [
                    (
                        quantile(0.5, "autocache_backend_request_duration_seconds", "backend"),
                        "{{backend}}",
                    )
                ],
            ),
            timeseries(
                "Backend errors",
                "ops",
                [
                    (
                        f"sum by (backend, kind) (rate(autocache_backend_errors_total{{{SEL}}}[{RATE}]))",
                        "{{backend}} {{kind}}",
                    )
                ],
            ),
            timeseries(
                "Redirects",
                "ops",
                [
                    (
                        f"sum by (kind) (rate(autocache_redirects_total{{{SEL}}}[{RATE}]))",
                        "{{kind}}",
                    )
                ],
                "MOVED and ASK replies the proxies followed.",
            ),
            timeseries(
                "Hot-key near cache",
                "ops",
                [
                    (
                        f"sum by (result) (rate(autocache_hotkey_cache_lookups_total{{{SEL}}}[{RATE}]))",
                        "{{result}}",
                    ),
                    (
                        f"sum(rate(autocache_hotkey_invalidations_total{{{SEL}}}[{RATE}]))",
                        "invalidations",
                    ),
                ],
                "Reads of hot keys served from the proxies' memory (hit) or the shards (miss).",
            ),
            timeseries(
                "Topology refreshes",
                "ops",
                [
                    (
                        f"sum by (result) (rate(autocache_topology_refreshes_total{{{SEL}}}[{RATE}]))",
                        "{{result}}",
                    )
                ],
            ),
            timeseries(
                "Fan-out width",
                "short",
                [
                    (quantile(0.5, "autocache_fanout_width", "job"), "p50"),
                    (quantile(0.99, "autocache_fanout_width", "job"), "p99"),
                ],
                "Shards one multi-key command (MGET, MSET, DEL, ...) was split over.",
            ),
        ],
    ),
]


def layout():
    panels, y, pid = [], 0, 1
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "id": pid,
                "panels": [],
            }
        )
        pid += 1
        y += 1
        x, row_h = 0, 0
        for p in row:
            w, h = p.pop("_size")
            if x + w > 24:
                x, y = 0, y + row_h
                row_h = 0
            p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            p["id"] = pid
            pid += 1
            panels.append(p)
            x += w
            row_h = max(row_h, h)
        y += row_h
    return panels


def dashboard():
    return {
        "uid": "autocache-overview",
        "title": "AutoCache",
        "description": "AutoCache shards and proxies: traffic, latency, hit rate, memory, cluster, tiers, proxy backends.",
        "tags": ["autocache"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "autocache-prometheus"},
                    "hide": 0,
                    "refresh": 1,
                    "options": [],
                },
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": DS,
                    "definition": "label_values(autocache_info, instance)",
                    "query": {
                        "query": "label_values(autocache_info, instance)",
                        "refId": "instances",
                    },
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                    "options": [],
                },
            ]
        },
        "panels": layout(),
    }


def exprs(board):
    for p in board["panels"]:
        for t in p.get("targets", []):
            yield t["expr"]


def render():
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv):
    text = render()
    if "--exprs" in argv:
        for e in exprs(json.loads(text)):
            print(e.replace("$__rate_interval", "1m").replace("$instance", ".*"))
        return 0
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is not what {__file__} generates: run python3 {__file__}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
