//! `status`: live counters, like php-fpm's status page. JSON by default; Prometheus text with
//! `?format=prometheus` (or a path ending in `/metrics`).
//!
//! Under a master (`processes = N`), whichever worker answers shows the totals of every
//! worker, then each worker on its own (its own counters live, the others' from their status
//! files, see `master::counters`).

use std::fmt::Write as _;

use crate::config::AppConfig;
use gateway_core::{App, Body, BoxError, Environ, Response, Snapshot, Stats};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

/// The factory for `type = "status"` (no keys): the page of `stats`.
pub(super) fn factory(
    stats: &'static Stats,
) -> impl Fn(&AppConfig<'_>) -> Result<Status, BoxError> + Send + Sync + 'static {
    move |cfg| {
        let Settings {} = cfg.deserialize()?;
        Ok(Status(stats))
    }
}

/// The status app.
pub(super) struct Status(&'static Stats);

impl App for Status {
    async fn call(&self, env: Environ, _body: Body) -> Response {
        let own = self.0.snapshot();
        let fleet = Fleet::gather(&own);
        let snapshot = fleet.as_ref().map_or(&own, |f| &f.total);
        let prometheus = env.path_info().ends_with(b"/metrics")
            || form_urlencoded::parse(env.query_string())
                .any(|(k, v)| k == "format" && v == "prometheus");
        let res = match prometheus {
            true => {
                let mut text = prometheus_text(snapshot);
                if let Some(fleet) = &fleet {
                    fleet.prometheus(&mut text);
                }
                Response::new(200)
                    .with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    .with_body(text)
            }
            false => {
                let mut doc = json_doc(snapshot);
                if let (Some(fleet), Value::Object(map)) = (&fleet, &mut doc) {
                    fleet.json(map);
                }
                let mut body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
                body.push(b'\n');
                Response::new(200)
                    .with_header("Content-Type", "application/json")
                    .with_body(body)
            }
        };
        res.with_header("Cache-Control", "no-store")
    }
}

/// A per-worker metric: name, type, help, and its value from a worker's counters.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Snapshot) -> f64,
);

/// Every worker of a master, this one included.
struct Fleet {
    /// The sum over the workers, with the master's uptime.
    total: Snapshot,
    /// `(slot, pid, counters)`, by slot.
    workers: Vec<(usize, u32, Snapshot)>,
    master_pid: u32,
    master_uptime: f64,
    processes: usize,
}

impl Fleet {
    /// The fleet this worker belongs to; `None` in a single process.
    fn gather(own: &Snapshot) -> Option<Fleet> {
        let peers = crate::master::peers()?;
        let me = std::process::id();
        let mut workers: Vec<(usize, u32, Snapshot)> = crate::master::read_all(&peers.dir, me)
            .iter()
            .map(|c| (c.slot, c.pid, c.snapshot(own)))
            .collect();
        workers.push((peers.slot, me, own.clone()));
        workers.sort_by_key(|(slot, pid, _)| (*slot, *pid));
        let master_uptime = (crate::master::now() - peers.master.started).max(0.0);
        let all: Vec<Snapshot> = workers.iter().map(|(_, _, s)| s.clone()).collect();
        let total = crate::master::total(&all, std::time::Duration::from_secs_f64(master_uptime))?;
        Some(Fleet {
            total,
            workers,
            master_pid: peers.master.pid,
            master_uptime,
            processes: peers.master.processes,
        })
    }

    /// The JSON page's additions: who answered, the master, each worker.
    fn json(&self, doc: &mut Map<String, Value>) {
        doc.insert("pid".into(), std::process::id().into());
        doc.insert(
            "master".into(),
            json!({ "pid": self.master_pid, "uptime_seconds": self.master_uptime, "processes": self.processes }),
        );
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|(slot, pid, s)| {
                let open: i64 = s.connections.iter().map(|(_, n)| n).sum();
                json!({
                    "slot": slot,
                    "pid": pid,
                    "uptime_seconds": s.uptime.as_secs_f64(),
                    "requests_total": s.total(),
                    "in_flight": s.in_flight,
                    "bytes_sent": s.bytes,
                    "connections": open,
                    "dropped_log_lines": s.dropped_log_lines,
                })
            })
            .collect();
        doc.insert("workers".into(), Value::Array(workers));
    }

    /// The Prometheus page's additions: each worker's own series, labelled by slot and pid.
    fn prometheus(&self, out: &mut String) {
        let series: [Series; 3] = [
            (
                "gatewayd_worker_requests_total",
                "counter",
                "Requests answered by one worker process.",
                |s| s.total() as f64,
            ),
            (
                "gatewayd_worker_requests_in_flight",
                "gauge",
                "Requests of one worker process whose response has not finished.",
                |s| s.in_flight as f64,
            ),
            (
                "gatewayd_worker_uptime_seconds",
                "gauge",
                "Seconds since one worker process started.",
                |s| s.uptime.as_secs_f64(),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (slot, pid, s) in &self.workers {
                let _ = writeln!(out, "{name}{{slot=\"{slot}\",pid=\"{pid}\"}} {}", value(s));
            }
        }
        let _ = writeln!(out, "# HELP gatewayd_workers Worker processes running.");
        let _ = writeln!(out, "# TYPE gatewayd_workers gauge");
        let _ = writeln!(out, "gatewayd_workers {}", self.workers.len());
    }
}

fn json_doc(s: &Snapshot) -> Value {
    let mut requests = Map::new();
    for (protocol, class, count) in &s.requests {
        let by_class = requests
            .entry(protocol.as_str())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = by_class {
            m.insert((*class).to_owned(), (*count).into());
        }
    }
    let connections: Map<String, Value> = s
        .connections
        .iter()
        .map(|(l, n)| (l.clone(), (*n).into()))
        .collect();
    let buckets: Vec<Value> = s
        .latency
        .iter()
        .map(|(le, n)| json!({ "le": if le.is_finite() { json!(le) } else { json!("+Inf") }, "count": n }))
        .collect();
    json!({
        "uptime_seconds": s.uptime.as_secs_f64(),
        "requests_total": s.total(),
        "requests": requests,
        "in_flight": s.in_flight,
        "bytes_sent": s.bytes,
        "connections": connections,
        "dropped_log_lines": s.dropped_log_lines,
        "latency_seconds": { "buckets": buckets, "sum": s.latency_sum, "count": s.total() },
    })
}

fn prometheus_text(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP gatewayd_uptime_seconds Seconds since the daemon started."
    );
    let _ = writeln!(out, "# TYPE gatewayd_uptime_seconds gauge");
    let _ = writeln!(out, "gatewayd_uptime_seconds {}", s.uptime.as_secs_f64());
    let _ = writeln!(
        out,
        "# HELP gatewayd_requests_total Requests answered, by gateway and status class."
    );
    let _ = writeln!(out, "# TYPE gatewayd_requests_total counter");
    for (protocol, class, count) in &s.requests {
        let _ = writeln!(
            out,
            "gatewayd_requests_total{{protocol=\"{protocol}\",status=\"{class}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP gatewayd_requests_in_flight Requests whose response has not finished."
    );
    let _ = writeln!(out, "# TYPE gatewayd_requests_in_flight gauge");
    let _ = writeln!(out, "gatewayd_requests_in_flight {}", s.in_flight);
    let _ = writeln!(
        out,
        "# HELP gatewayd_response_bytes_total Response body bytes sent."
    );
    let _ = writeln!(out, "# TYPE gatewayd_response_bytes_total counter");
    let _ = writeln!(out, "gatewayd_response_bytes_total {}", s.bytes);
    let _ = writeln!(
        out,
        "# HELP gatewayd_connections Open connections, by listener."
    );
    let _ = writeln!(out, "# TYPE gatewayd_connections gauge");
    for (listener, n) in &s.connections {
        let _ = writeln!(
            out,
            "gatewayd_connections{{listener=\"{}\"}} {n}",
            listener.replace('"', "'")
        );
    }
    let _ = writeln!(
        out,
        "# HELP gatewayd_log_lines_dropped_total Log lines dropped because the log writer was behind."
    );
    let _ = writeln!(out, "# TYPE gatewayd_log_lines_dropped_total counter");
    let _ = writeln!(
        out,
        "gatewayd_log_lines_dropped_total {}",
        s.dropped_log_lines
    );
    let _ = writeln!(
        out,
        "# HELP gatewayd_request_duration_seconds Time to the end of the response."
    );
    let _ = writeln!(out, "# TYPE gatewayd_request_duration_seconds histogram");
    for (le, n) in &s.latency {
        let le = if le.is_finite() {
            le.to_string()
        } else {
            "+Inf".to_owned()
        };
        let _ = writeln!(
            out,
            "gatewayd_request_duration_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "gatewayd_request_duration_seconds_sum {}",
        s.latency_sum
    );
    let _ = writeln!(out, "gatewayd_request_duration_seconds_count {}", s.total());
    out
}
