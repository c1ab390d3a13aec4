//! Replies gathered from every shard and combined into the one reply a single Redis would
//! give: INFO, CONFIG GET, SLOWLOG GET and RANDOMKEY. The merges are pure functions of the
//! shards' decoded replies (and, for RANDOMKEY, of a random number the caller draws), so they
//! are unit-tested here without servers; `plan` sends the requests and `session` feeds the
//! replies in.

use bytes::Bytes;

use crate::protocol::Reply;

/// What to make of the replies of an [`crate::plan::Item::Gather`].
#[derive(Debug)]
pub enum Gather {
    /// INFO: the proxy's own sections (rendered when the request was planned) merged with the
    /// shards' summed ones.
    Info { own: String },
    /// CONFIG GET: the shards' parameters, with the proxy's own ones (`own`, already filtered
    /// by the patterns) answered by the proxy instead.
    Config { own: Vec<(String, String)> },
    /// SLOWLOG GET: the newest `count` entries of all shards (None: all).
    Slowlog { count: Option<usize> },
    /// RANDOMKEY: the replies come in pairs per shard, `DBSIZE` then `RANDOMKEY`.
    Random,
    /// PUBSUB: channel lists united (CHANNELS, SHARDCHANNELS), or counts summed (`numbers`:
    /// NUMSUB and SHARDNUMSUB per channel, NUMPAT), each count corrected by `adjust` (this
    /// proxy's clients in place of its hub's upstream subscriptions).
    Pubsub { numbers: bool, adjust: Vec<i64> },
}

/// Combines the shards' replies (in slot-map order) as `how` says. `random` is a uniformly
/// random number, used by RANDOMKEY only.
pub fn gather(how: Gather, replies: Vec<Reply>, random: u64) -> Reply {
    match how {
        Gather::Info { own } => {
            let total = replies.len();
            let texts: Vec<String> = replies.into_iter().filter_map(info_text).collect();
            Reply::Verbatim(merge_info(&own, &texts, total))
        }
        Gather::Config { own } => {
            let mut shards = Vec::with_capacity(replies.len());
            for r in replies {
                match r {
                    Reply::Array(flat) => shards.push(pairs(flat)),
                    Reply::Map(p) => shards.push(p),
                    e @ Reply::Error(_) => return e,
                    other => return unexpected("CONFIG GET", &other),
                }
            }
            Reply::Map(merge_config(&own, shards))
        }
        Gather::Slowlog { count } => {
            let mut shards = Vec::with_capacity(replies.len());
            for r in replies {
                match r {
                    Reply::Array(entries) => shards.push(entries),
                    e @ Reply::Error(_) => return e,
                    other => return unexpected("SLOWLOG GET", &other),
                }
            }
            Reply::Array(merge_slowlog(shards, count))
        }
        Gather::Random => random_key(replies, random),
        Gather::Pubsub { numbers, adjust } => pubsub(replies, numbers, &adjust),
    }
}

/// [`Gather::Pubsub`]. Nodes that failed are left out, unless all did.
fn pubsub(replies: Vec<Reply>, numbers: bool, adjust: &[i64]) -> Reply {
    let mut first_error = None;
    let mut answered: Vec<Reply> = Vec::with_capacity(replies.len());
    for r in replies {
        match r {
            e @ Reply::Error(_) => {
                first_error.get_or_insert(e);
            }
            other => answered.push(other),
        }
    }
    if answered.is_empty()
        && let Some(e) = first_error
    {
        return e;
    }
    let fix = |i: usize, n: i64| (n + adjust.get(i).copied().unwrap_or(0)).max(0);
    if !numbers {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for r in answered {
            if let Reply::Array(names) | Reply::Set(names) = r {
                for n in names {
                    if let Reply::Bulk(b) = &n
                        && seen.insert(b.clone())
                    {
                        out.push(n);
                    }
                }
            }
        }
        return Reply::Array(out);
    }
    if answered.iter().all(|r| matches!(r, Reply::Int(_))) {
        let sum = answered
            .iter()
            .map(|r| if let Reply::Int(n) = r { *n } else { 0 })
            .sum();
        return Reply::Int(fix(0, sum));
    }
    // Flat `channel, count` pairs, in the request's order on every node.
    let mut out: Vec<Reply> = Vec::new();
    for r in answered {
        let Reply::Array(flat) = r else { continue };
        if out.is_empty() {
            out = flat;
            continue;
        }
        for (i, v) in flat.into_iter().enumerate() {
            if let (Some(Reply::Int(acc)), Reply::Int(n)) = (out.get_mut(i), v) {
                *acc += n;
            }
        }
    }
    for (i, r) in out.iter_mut().enumerate() {
        if i % 2 == 1
            && let Reply::Int(n) = r
        {
            *n = fix(i / 2, *n);
        }
    }
    Reply::Array(out)
}

fn unexpected(cmd: &str, r: &Reply) -> Reply {
    Reply::Error(format!("ERR unexpected backend reply to {cmd}: {r:?}"))
}

fn text_of(r: &Reply) -> Option<String> {
    match r {
        Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Reply::Verbatim(s) | Reply::Status(s) => Some(s.clone()),
        _ => None,
    }
}

/// A shard's INFO text; None for an error (a shard that is down): INFO still answers, from the
/// shards that did, and says how many did (`info_shards_answered`).
fn info_text(r: Reply) -> Option<String> {
    text_of(&r)
}

fn pairs(flat: Vec<Reply>) -> Vec<(Reply, Reply)> {
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

// ---- INFO ----

/// One INFO section: the name of its header (`Keyspace` for `# Keyspace`) and its `key:value`
/// lines in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

/// Parses INFO text. Lines before the first header and lines without `:` are dropped.
pub fn parse_info(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(name) = line.strip_prefix("# ") {
            out.push(Section {
                name: name.trim().to_string(),
                fields: Vec::new(),
            });
        } else if let (Some((k, v)), Some(s)) = (line.split_once(':'), out.last_mut()) {
            s.fields.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// Sections whose figures add up across shards. The shards' other sections describe one
/// node (its process, persistence, replication) and are left out: the proxy answers server,
/// clients, replication and cluster for itself.
const SUMMED: [&str; 8] = [
    "memory",
    "stats",
    "cpu",
    "tiering",
    "commandstats",
    "errorstats",
    "latencystats",
    "keyspace",
];

/// The order sections are written in (Redis's, then the proxy's own); any other section
/// follows in the order it was first seen.
const ORDER: [&str; 17] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "tiering",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
    "proxy",
    "hotkeys",
    "shards",
];

/// The INFO reply: the shards' summed sections with the proxy's own sections (`own`, INFO
/// text) added; where both have a section (stats, cpu) the proxy's fields replace the shards'
/// of the same name (client-facing counters such as `total_commands_processed` are the
/// proxy's) and the rest follow. `total` is the number of shards asked: the proxy section says
/// how many answered.
pub fn merge_info(own: &str, shards: &[String], total: usize) -> String {
    let mut own = parse_info(own);
    if let Some(p) = own
        .iter_mut()
        .find(|s| s.name.eq_ignore_ascii_case("proxy"))
    {
        p.fields.push((
            "info_shards_answered".into(),
            format!("{}/{total}", shards.len()),
        ));
    }
    let parsed: Vec<Vec<Section>> = shards.iter().map(|t| parse_info(t)).collect();
    let mut merged: Vec<Section> = Vec::new();
    for shard in &parsed {
        for sec in shard {
            let lower = sec.name.to_ascii_lowercase();
            if SUMMED.contains(&lower.as_str())
                && !merged.iter().any(|m| m.name.eq_ignore_ascii_case(&lower))
            {
                merged.push(merge_section(&sec.name, &parsed));
            }
        }
    }
    for o in own {
        match merged
            .iter_mut()
            .find(|m| m.name.eq_ignore_ascii_case(&o.name))
        {
            Some(m) => {
                for (k, v) in o.fields {
                    match m.fields.iter_mut().find(|(mk, _)| *mk == k) {
                        Some(f) => f.1 = v,
                        None => m.fields.push((k, v)),
                    }
                }
            }
            None => merged.push(o),
        }
    }
    let rank = |s: &Section| {
        ORDER
            .iter()
            .position(|o| s.name.eq_ignore_ascii_case(o))
            .unwrap_or(ORDER.len())
    };
    // Stable: sections of equal rank keep the order they were first seen in.
    merged.sort_by_key(rank);
    let mut out = String::new();
    for (i, s) in merged.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str("# ");
        out.push_str(&s.name);
        out.push_str("\r\n");
        for (k, v) in &s.fields {
            out.push_str(k);
            out.push(':');
            out.push_str(v);
            out.push_str("\r\n");
        }
    }
    out
}

/// One section summed over the shards that have it: fields in the order first seen, each
/// merged by [`merge_field`]; `*_human` fields are recomputed from the summed byte count.
fn merge_section(name: &str, shards: &[Vec<Section>]) -> Section {
    let mut keys: Vec<&str> = Vec::new();
    for shard in shards {
        for sec in shard.iter().filter(|s| s.name.eq_ignore_ascii_case(name)) {
            for (k, _) in &sec.fields {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
    }
    let mut fields: Vec<(String, String)> = keys
        .iter()
        .map(|k| {
            let values: Vec<&str> = shards
                .iter()
                .flat_map(|shard| shard.iter().filter(|s| s.name.eq_ignore_ascii_case(name)))
                .flat_map(|s| s.fields.iter().filter(|(fk, _)| fk == k))
                .map(|(_, v)| v.as_str())
                .collect();
            (k.to_string(), merge_field(k, &values))
        })
        .collect();
    let sums: Vec<(String, String)> = fields.clone();
    for (k, v) in &mut fields {
        if let Some(base) = k.strip_suffix("_human")
            && let Some(bytes) = sums
                .iter()
                .find(|(bk, _)| bk == base)
                .and_then(|(_, bv)| bv.parse::<u64>().ok())
        {
            *v = membership::resp::human_bytes(bytes);
        }
    }
    Section {
        name: name.to_string(),
        fields,
    }
}

/// Figures that are averages or ratios: their mean over the shards is reported, not the sum.
fn is_ratio(key: &str) -> bool {
    key.ends_with("_ratio")
        || key.ends_with("_perc")
        || key.ends_with("_percentage")
        || key.starts_with("avg_")
        || key.ends_with("_per_call")
}

/// One field across shards:
/// - integers are summed, except `maxmemory` (0, no limit, on any shard means no limit on the
///   whole) and `latest_fork_usec` (the longest);
/// - decimals are summed (CPU seconds, kbps) with the precision the shards used, except ratios
///   and averages ([`is_ratio`]), whose mean is reported;
/// - `a=1,b=2` lists (keyspace `db0:keys=..,expires=..,avg_ttl=..`, commandstats) are merged
///   item by item: `avg_ttl` weighted by `expires`, `usec_per_call` recomputed as usec/calls;
/// - anything else (policy names, allocator) is the first shard's value.
pub fn merge_field(key: &str, values: &[&str]) -> String {
    let Some(first) = values.first() else {
        return String::new();
    };
    if let Some(ints) = values
        .iter()
        .map(|v| v.parse::<i64>().ok())
        .collect::<Option<Vec<i64>>>()
    {
        return match key {
            "maxmemory" if ints.contains(&0) => "0".into(),
            "latest_fork_usec" => ints.iter().max().copied().unwrap_or(0).to_string(),
            _ if is_ratio(key) => {
                mean_decimal(&ints.iter().map(|&n| n as f64).collect::<Vec<_>>(), 0)
            }
            _ => ints
                .iter()
                .fold(0i64, |a, &n| a.saturating_add(n))
                .to_string(),
        };
    }
    if let Some(floats) = values
        .iter()
        .map(|v| v.parse::<f64>().ok().filter(|f| f.is_finite()))
        .collect::<Option<Vec<f64>>>()
    {
        let places = first.split_once('.').map_or(0, |(_, d)| d.len());
        return if is_ratio(key) {
            mean_decimal(&floats, places)
        } else {
            format!("{:.*}", places, floats.iter().sum::<f64>())
        };
    }
    if values.iter().all(|v| v.contains('=')) {
        return merge_list(values);
    }
    (*first).to_string()
}

fn mean_decimal(values: &[f64], places: usize) -> String {
    let n = values.len().max(1) as f64;
    format!("{:.*}", places, values.iter().sum::<f64>() / n)
}

/// Merges `k=v,k=v` lists item by item (see [`merge_field`]).
fn merge_list(values: &[&str]) -> String {
    let parsed: Vec<Vec<(&str, &str)>> = values
        .iter()
        .map(|v| v.split(',').filter_map(|kv| kv.split_once('=')).collect())
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    for p in &parsed {
        for (k, _) in p {
            if !keys.contains(k) {
                keys.push(k);
            }
        }
    }
    let get = |p: &[(&str, &str)], k: &str| -> Option<f64> {
        p.iter()
            .find(|(pk, _)| *pk == k)
            .and_then(|(_, v)| v.parse().ok())
    };
    let sum = |k: &str| -> f64 { parsed.iter().filter_map(|p| get(p, k)).sum() };
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for k in &keys {
        let value = match *k {
            // The mean TTL of all volatile keys: each shard's mean weighted by its count.
            "avg_ttl" => {
                let expires = sum("expires");
                let weighted: f64 = parsed
                    .iter()
                    .filter_map(|p| Some(get(p, "avg_ttl")? * get(p, "expires")?))
                    .sum();
                let avg = if expires > 0.0 {
                    weighted / expires
                } else {
                    0.0
                };
                format!("{}", avg.round() as i64)
            }
            // Percentiles (latencystats `p50=..,p99=..`) do not add up: the worst shard's is
            // reported, an upper bound of the whole's.
            _ if is_percentile(k) => {
                let worst = parsed
                    .iter()
                    .filter_map(|p| get(p, k))
                    .fold(0.0f64, f64::max);
                format!("{worst:.3}")
            }
            "usec_per_call" => {
                let calls = sum("calls");
                let per = if calls > 0.0 {
                    sum("usec") / calls
                } else {
                    0.0
                };
                format!("{per:.2}")
            }
            _ => {
                let items: Vec<&str> = parsed
                    .iter()
                    .filter_map(|p| p.iter().find(|(pk, _)| pk == k).map(|(_, v)| *v))
                    .collect();
                merge_field(k, &items)
            }
        };
        out.push(format!("{k}={value}"));
    }
    out.join(",")
}

/// `p50`, `p99.9`: a latencystats percentile.
fn is_percentile(k: &str) -> bool {
    k.strip_prefix('p')
        .is_some_and(|rest| !rest.is_empty() && rest.parse::<f64>().is_ok())
}

// ---- CONFIG GET ----

/// The shards' parameters by name in first-seen order, each the first shard's value except
/// `maxmemory` (summed: the memory of the whole keyspace, 0 if any shard is unlimited); names
/// the proxy answers itself (`own`) replace the shards'.
pub fn merge_config(
    own: &[(String, String)],
    shards: Vec<Vec<(Reply, Reply)>>,
) -> Vec<(Reply, Reply)> {
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Vec<String>> = Vec::new();
    for shard in shards {
        for (k, v) in shard {
            let (Some(k), Some(v)) = (text_of(&k), text_of(&v)) else {
                continue;
            };
            if own.iter().any(|(o, _)| o.eq_ignore_ascii_case(&k)) {
                continue;
            }
            match names.iter().position(|n| *n == k) {
                Some(i) => values[i].push(v),
                None => {
                    names.push(k);
                    values.push(vec![v]);
                }
            }
        }
    }
    let mut out: Vec<(Reply, Reply)> = names
        .iter()
        .zip(values)
        .map(|(k, vs)| {
            let v = if k == "maxmemory" {
                let n: Option<Vec<u64>> = vs.iter().map(|v| v.parse().ok()).collect();
                match n {
                    Some(n) if n.contains(&0) => "0".to_string(),
                    Some(n) => n.iter().fold(0u64, |a, &b| a.saturating_add(b)).to_string(),
                    None => vs.first().cloned().unwrap_or_default(),
                }
            } else {
                vs.first().cloned().unwrap_or_default()
            };
            (Reply::str(k), Reply::str(&v))
        })
        .collect();
    out.extend(own.iter().map(|(k, v)| (Reply::str(k), Reply::str(v))));
    out
}

// ---- SLOWLOG GET ----

/// Every shard's entries, newest first (by timestamp, then id), the first `count`. Entry ids
/// are per shard, so each becomes `id × nshards + shard index`: unique across shards and,
/// while the slot map keeps its shards, stable from one call to the next (a client that
/// remembers the last id it saw keeps working).
pub fn merge_slowlog(shards: Vec<Vec<Reply>>, count: Option<usize>) -> Vec<Reply> {
    let n = shards.len() as i64;
    let mut all: Vec<(i64, i64, Reply)> = Vec::new();
    for (i, entries) in shards.into_iter().enumerate() {
        for e in entries {
            match e {
                Reply::Array(mut fields) => {
                    let id = match fields.first() {
                        Some(Reply::Int(id)) => id.saturating_mul(n).saturating_add(i as i64),
                        _ => 0,
                    };
                    if let Some(f) = fields.first_mut() {
                        *f = Reply::Int(id);
                    }
                    let time = match fields.get(1) {
                        Some(Reply::Int(t)) => *t,
                        _ => 0,
                    };
                    all.push((time, id, Reply::Array(fields)));
                }
                other => all.push((0, 0, other)),
            }
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    all.into_iter()
        .take(count.unwrap_or(usize::MAX))
        .map(|(_, _, e)| e)
        .collect()
}

/// SLOWLOG GET's count: 10 by default, -1 for all. Anything else the shards reject with
/// Redis's error, which becomes the reply.
pub fn slowlog_count(arg: Option<&[u8]>) -> Option<usize> {
    match arg {
        None => Some(10),
        Some(a) => std::str::from_utf8(a)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|n| usize::try_from(n).ok()),
    }
}

// ---- RANDOMKEY ----

/// Index of the weight `random` falls on when the weights are laid end to end (None when they
/// are all 0). With `random` uniform, index i comes up with probability w_i / Σw (up to a
/// modulo bias of Σw / 2^64).
pub fn pick_weighted(weights: &[u64], random: u64) -> Option<usize> {
    let total = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    if total == 0 {
        return None;
    }
    let mut x = random % total;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return Some(i);
        }
        x -= w;
    }
    None
}

/// RANDOMKEY over shards: each shard's random key, kept with a weight equal to its DBSIZE, so
/// a key of the whole keyspace comes up with probability (n_i / N) × (1 / n_i) = 1 / N. Shards
/// that failed are left out while another answered (their keys cannot be read either); only
/// when none answered is the first error the reply.
fn random_key(replies: Vec<Reply>, random: u64) -> Reply {
    let mut keys: Vec<Bytes> = Vec::new();
    let mut weights: Vec<u64> = Vec::new();
    let mut first_error = None;
    let mut answered = false;
    let mut it = replies.into_iter();
    while let (Some(size), Some(key)) = (it.next(), it.next()) {
        match (size, key) {
            (Reply::Int(n), Reply::Bulk(k)) => {
                answered = true;
                // A key seen by RANDOMKEY but not by the DBSIZE just before it (written in
                // between) still counts as one.
                weights.push(u64::try_from(n).unwrap_or(0).max(1));
                keys.push(k);
            }
            (Reply::Int(_), Reply::Nil) => answered = true,
            (e @ Reply::Error(_), _) | (_, e @ Reply::Error(_)) => {
                first_error.get_or_insert(e);
            }
            (a, b) => {
                first_error
                    .get_or_insert_with(|| unexpected("RANDOMKEY", &Reply::Array(vec![a, b])));
            }
        }
    }
    match pick_weighted(&weights, random).and_then(|i| keys.get(i)) {
        Some(k) => Reply::Bulk(k.clone()),
        None if answered => Reply::Nil,
        None => first_error.unwrap_or(Reply::Nil),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_take_the_worst_shard() {
        let a =
            "# Latencystats\r\nlatency_percentiles_usec_get:p50=1.000,p99=10.000,p99.9=20.000\r\n";
        let b =
            "# Latencystats\r\nlatency_percentiles_usec_get:p50=3.000,p99=5.000,p99.9=30.000\r\n";
        let merged = merge_info("", &[a.to_string(), b.to_string()], 2);
        assert!(
            merged.contains("latency_percentiles_usec_get:p50=3.000,p99=10.000,p99.9=30.000"),
            "{merged}"
        );
    }

    const SHARD_A: &str = "# Server\r\nredis_version:7.0.15\r\nprocess_id:1\r\n\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:100\r\nmaxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.50\r\n\r\n# Stats\r\ntotal_commands_processed:10\r\nkeyspace_hits:3\r\nlatest_fork_usec:5\r\n\r\n# CPU\r\nused_cpu_sys:1.250000\r\n\r\n# Persistence\r\nloading:0\r\n\r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=1000\r\n";
    const SHARD_B: &str = "# Memory\r\nused_memory:2097152\r\nused_memory_human:2.00M\r\nmaxmemory:200\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:2.50\r\n\r\n# Stats\r\ntotal_commands_processed:20\r\nkeyspace_hits:4\r\nlatest_fork_usec:9\r\n\r\n# CPU\r\nused_cpu_sys:0.500000\r\n\r\n# Keyspace\r\ndb0:keys=5,expires=6,avg_ttl=3000\r\n";

    fn field<'a>(secs: &'a [Section], sec: &str, key: &str) -> Option<&'a str> {
        secs.iter()
            .find(|s| s.name == sec)?
            .fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn info_sums_the_shards_and_keeps_the_proxys_own_sections() {
        let own = "# Server\r\nredis_version:7.2.4\r\nproxy:yes\r\n\r\n# Clients\r\nconnected_clients:4\r\nblocked_clients:0\r\n\r\n# Stats\r\ntotal_commands_processed:99\r\nredirects_moved:1\r\n\r\n# Proxy\r\nshards:3\r\n";
        let out = merge_info(own, &[SHARD_A.into(), SHARD_B.into()], 3);
        let secs = parse_info(&out);
        let names: Vec<&str> = secs.iter().map(|s| s.name.as_str()).collect();
        // The shards' Server and Persistence are not shown; Redis's order.
        assert_eq!(
            names,
            [
                "Server", "Clients", "Memory", "Stats", "CPU", "Keyspace", "Proxy"
            ]
        );
        assert_eq!(field(&secs, "Server", "redis_version"), Some("7.2.4"));
        assert_eq!(field(&secs, "Server", "process_id"), None);
        assert_eq!(field(&secs, "Memory", "used_memory"), Some("3145728"));
        assert_eq!(field(&secs, "Memory", "used_memory_human"), Some("3.00M"));
        assert_eq!(field(&secs, "Memory", "maxmemory"), Some("300"));
        assert_eq!(
            field(&secs, "Memory", "maxmemory_policy"),
            Some("allkeys-lru")
        );
        assert_eq!(
            field(&secs, "Memory", "mem_fragmentation_ratio"),
            Some("2.00")
        );
        // Client-facing counters are the proxy's; data counters the shards' sum.
        assert_eq!(
            field(&secs, "Stats", "total_commands_processed"),
            Some("99")
        );
        assert_eq!(field(&secs, "Stats", "keyspace_hits"), Some("7"));
        assert_eq!(field(&secs, "Stats", "latest_fork_usec"), Some("9"));
        assert_eq!(field(&secs, "Stats", "redirects_moved"), Some("1"));
        assert_eq!(field(&secs, "CPU", "used_cpu_sys"), Some("1.750000"));
        // avg_ttl weighted by expires: (1000×2 + 3000×6) / 8.
        assert_eq!(
            field(&secs, "Keyspace", "db0"),
            Some("keys=15,expires=8,avg_ttl=2500")
        );
        assert_eq!(field(&secs, "Proxy", "info_shards_answered"), Some("2/3"));
        assert!(out.starts_with("# Server\r\n") && out.contains("\r\n\r\n# Clients\r\n"));
    }

    #[test]
    fn info_edge_cases() {
        // An unlimited shard makes the whole unlimited; an empty keyspace keeps its header.
        let a = "# Memory\r\nmaxmemory:0\r\n\r\n# Keyspace\r\n";
        let b = "# Memory\r\nmaxmemory:10\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
        let secs = parse_info(&merge_info("", &[a.into(), b.into()], 2));
        assert_eq!(field(&secs, "Memory", "maxmemory"), Some("0"));
        assert_eq!(
            field(&secs, "Keyspace", "db0"),
            Some("keys=1,expires=0,avg_ttl=0")
        );
        let empty = parse_info(&merge_info("", &[a.into()], 1));
        assert!(
            empty
                .iter()
                .any(|s| s.name == "Keyspace" && s.fields.is_empty())
        );
        // No shard answered: the proxy's own sections alone.
        let only = merge_info("# Proxy\r\nshards:2\r\n", &[], 2);
        assert_eq!(only, "# Proxy\r\nshards:2\r\ninfo_shards_answered:0/2\r\n");
        // Command statistics: calls summed, usec_per_call recomputed.
        assert_eq!(
            merge_field(
                "cmdstat_get",
                &[
                    "calls=2,usec=10,usec_per_call=5.00,rejected_calls=0",
                    "calls=3,usec=5,usec_per_call=1.67,rejected_calls=1"
                ]
            ),
            "calls=5,usec=15,usec_per_call=3.00,rejected_calls=1"
        );
        assert_eq!(merge_field("role", &["master", "slave"]), "master");
        assert_eq!(membership::resp::human_bytes(512), "512B");
        assert_eq!(membership::resp::human_bytes(1536), "1.50K");
    }

    #[test]
    fn config_takes_the_first_shards_value_sums_maxmemory_and_answers_the_proxys_own() {
        let s = |k: &str, v: &str| (Reply::str(k), Reply::str(v));
        let own = vec![("port".to_string(), "6379".to_string())];
        let merged = merge_config(
            &own,
            vec![
                vec![s("maxmemory", "100"), s("port", "7001"), s("hz", "10")],
                vec![s("maxmemory", "50"), s("port", "7002"), s("hz", "20")],
            ],
        );
        assert_eq!(
            merged,
            vec![s("maxmemory", "150"), s("hz", "10"), s("port", "6379")]
        );
        let unlimited = merge_config(
            &[],
            vec![vec![s("maxmemory", "0")], vec![s("maxmemory", "50")]],
        );
        assert_eq!(unlimited, vec![s("maxmemory", "0")]);
        // Through gather: RESP2 flat arrays, and an error wins.
        let flat = Reply::Array(vec![Reply::str("hz"), Reply::str("10")]);
        assert_eq!(
            gather(Gather::Config { own: vec![] }, vec![flat.clone()], 0),
            Reply::Map(vec![s("hz", "10")])
        );
        let e = Reply::Error("ERR backend 127.0.0.1:1 unavailable".into());
        assert_eq!(
            gather(Gather::Config { own: vec![] }, vec![flat, e.clone()], 0),
            e
        );
    }

    fn entry(id: i64, time: i64, micros: i64) -> Reply {
        Reply::Array(vec![
            Reply::Int(id),
            Reply::Int(time),
            Reply::Int(micros),
            Reply::Array(vec![Reply::str("GET"), Reply::str("k")]),
            Reply::str("127.0.0.1:1"),
            Reply::str(""),
        ])
    }

    #[test]
    fn slowlog_entries_are_merged_newest_first_with_unique_ids() {
        let merged = merge_slowlog(
            vec![
                vec![entry(1, 300, 5), entry(0, 100, 5)],
                vec![entry(1, 200, 7), entry(0, 100, 9)],
            ],
            Some(3),
        );
        // ids: shard 0's id 1 → 2, shard 1's id 1 → 3, id 0 → 1.
        assert_eq!(
            merged,
            vec![entry(2, 300, 5), entry(3, 200, 7), entry(1, 100, 9)]
        );
        assert_eq!(merge_slowlog(vec![vec![], vec![]], None), vec![]);
        assert_eq!(slowlog_count(None), Some(10));
        assert_eq!(slowlog_count(Some(b"-1")), None);
        assert_eq!(slowlog_count(Some(b"3")), Some(3));
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        assert_eq!(pick_weighted(&[], 5), None);
        assert_eq!(pick_weighted(&[0, 0], 5), None);
        let w = [1, 0, 3];
        let picks: Vec<Option<usize>> = (0..4).map(|r| pick_weighted(&w, r)).collect();
        assert_eq!(picks, [Some(0), Some(2), Some(2), Some(2)]);
        assert_eq!(pick_weighted(&[0, 7], u64::MAX), Some(1));
    }

    #[test]
    fn randomkey_is_uniform_over_the_keyspace() {
        let pair = |n: i64, k: Option<&str>| {
            [
                Reply::Int(n),
                k.map_or(Reply::Nil, |k| Reply::Bulk(Bytes::from(k.to_string()))),
            ]
        };
        // Shard a holds 1 key, shard b 3, shard c none: a's key one time in four.
        let replies = || -> Vec<Reply> {
            [pair(1, Some("a")), pair(3, Some("b")), pair(0, None)]
                .into_iter()
                .flatten()
                .collect()
        };
        let picks: Vec<Reply> = (0..4)
            .map(|r| gather(Gather::Random, replies(), r))
            .collect();
        let a = Reply::Bulk(Bytes::from_static(b"a"));
        assert_eq!(picks.iter().filter(|p| **p == a).count(), 1);
        // A failed shard is skipped while another answered; nil when nothing is stored.
        let e = Reply::Error("ERR backend down".into());
        let mut r: Vec<Reply> = pair(2, Some("b")).into();
        r.extend([e.clone(), Reply::Nil]);
        assert_eq!(
            gather(Gather::Random, r, 7),
            Reply::Bulk(Bytes::from_static(b"b"))
        );
        assert_eq!(gather(Gather::Random, pair(0, None).into(), 0), Reply::Nil);
        assert_eq!(gather(Gather::Random, vec![e.clone(), e.clone()], 0), e);
    }
}
