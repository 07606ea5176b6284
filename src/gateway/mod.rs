//! `dstore gateway`: the store over HTTP (tiny_http) and the web UI. A few worker threads share one
//! server; a small router maps (method, path) to one function per route; a panic in a handler
//! becomes a 500 and the server keeps serving. Read-only by construction: no request reaches the
//! file system except through the search engine, and the UI's files are compiled in.

mod openapi;

use crate::event_json::{frame_to_json, EventMeta};
use crate::filter::parse_id;
use crate::format::store::now_us;
use crate::format::{segment_paths, Segment, TimeRange};
use crate::log::Log;
use crate::search::{self, filter_from_pairs, Query, TopField};
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response, StatusCode};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Everything the gateway needs, checked before it listens.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub storage_dir: PathBuf,
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub workers: usize,
    /// Most events one search returns.
    pub max_limit: u64,
    /// How long one search may take before it answers with what it has.
    pub time_budget: Duration,
    /// Searches running at once; more are answered 503.
    pub max_searches: usize,
    /// Threads one search decodes with.
    pub search_threads: usize,
}

const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const ROUTES: [&str; 9] = [
    "ui",
    "search",
    "summary",
    "event",
    "get-endpoint-data",
    "metrics",
    "healthz",
    "openapi",
    "other",
];

#[derive(Default)]
struct Metrics {
    requests: [AtomicU64; ROUTES.len()],
    by_status: [AtomicU64; 6],
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

struct State {
    config: GatewayConfig,
    metrics: Metrics,
    searches: AtomicUsize,
    log: Log,
}

/// A response on its way: status, content type, body, extra headers.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Reply {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    }
    fn text(status: u16, content_type: &'static str, body: &str) -> Reply {
        Reply {
            status,
            content_type,
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }
    fn error(status: u16, message: &str, parameter: Option<&str>) -> Reply {
        let mut v = json!({ "error": message });
        if let Some(p) = parameter {
            v["parameter"] = json!(p);
        }
        Reply::json(status, &v)
    }
}

/// A request's query string, decoded: `key=value` pairs in order.
fn query_pairs(url: &str) -> Result<Vec<(String, String)>, String> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let key = percent_decode(k)?;
            let value = percent_decode(v).map_err(|e| format!("{key}: {e}"))?;
            Ok((key, value))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next(), bytes.next()];
                let digit = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
                match (digit(hex[0]), digit(hex[1])) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(format!("bad percent-encoding in `{s}`")),
                }
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

/// Compares a presented token with the configured one in time that does not depend on where they
/// differ.
fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Parameters that are not search conditions.
const CONTROL: [&str; 6] = ["limit", "cursor", "order", "interval", "top", "token"];

/// The search conditions among `pairs`; a 400 names the parameter at fault as `name` gives it.
fn conditions_named(
    pairs: &[(String, String)],
    name: fn(&str) -> &str,
) -> Result<crate::filter::Filter, Reply> {
    let conds = pairs
        .iter()
        .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()));
    filter_from_pairs(conds, now_us()).map_err(|e| {
        let parameter = e
            .split_once(':')
            .map(|(k, _)| name(k.trim()).replace('-', "_"));
        Reply::error(400, &e, parameter.as_deref())
    })
}

fn conditions(pairs: &[(String, String)]) -> Result<crate::filter::Filter, Reply> {
    conditions_named(pairs, |k| k)
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn event_json(ev: &crate::format::StoredEvent) -> Value {
    Value::Object(frame_to_json(
        ev.frame,
        &EventMeta {
            time_us: Some(ev.time_us),
            time_from_receive: ev.time_from_receive(),
        },
    ))
}

impl State {
    /// Runs a search under the concurrency cap and the time budget.
    fn search(
        &self,
        q: &mut Query,
        on_event: &mut dyn FnMut(&crate::format::StoredEvent) -> std::io::Result<()>,
    ) -> Result<search::Totals, Reply> {
        if self.searches.fetch_add(1, Relaxed) >= self.config.max_searches {
            self.searches.fetch_sub(1, Relaxed);
            let mut r = Reply::error(503, "too many searches at once; try again shortly", None);
            r.headers.push(("Retry-After", "1".into()));
            return Err(r);
        }
        q.deadline = Some(Instant::now() + self.config.time_budget);
        q.threads = self.config.search_threads;
        let result = search::run(&self.config.storage_dir, q, on_event);
        self.searches.fetch_sub(1, Relaxed);
        result.map_err(|e| Reply::error(500, &e.to_string(), None))
    }

    fn limit(&self, pairs: &[(String, String)], default: u64) -> Result<u64, Reply> {
        match param(pairs, "limit") {
            None => Ok(default.min(self.config.max_limit)),
            Some(l) => l
                .parse::<u64>()
                .ok()
                .filter(|&l| l > 0)
                .map(|l| l.min(self.config.max_limit))
                .ok_or_else(|| {
                    Reply::error(
                        400,
                        &format!("limit: `{l}` is not a positive number"),
                        Some("limit"),
                    )
                }),
        }
    }

    /// `GET /api/v1/search`: newest first by default, paged with a cursor that pins the end of the
    /// time range at the first page, so that new events do not shift later pages.
    fn api_search(&self, pairs: &[(String, String)]) -> Result<Reply, Reply> {
        let started = Instant::now();
        let mut filter = conditions(pairs)?;
        let limit = self.limit(pairs, 100)?;
        let newest_first = match param(pairs, "order") {
            None | Some("newest") => true,
            Some("oldest") => false,
            Some(o) => {
                return Err(Reply::error(
                    400,
                    &format!("order: `{o}` is not newest or oldest"),
                    Some("order"),
                ))
            }
        };
        let (anchor, offset) = match param(pairs, "cursor") {
            None => (filter.range().to_us.min(now_us() + 1), 0),
            Some(c) => c
                .split_once(':')
                .and_then(|(a, o)| Some((a.parse::<u64>().ok()?, o.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    Reply::error(
                        400,
                        &format!("cursor: `{c}` is not a cursor this server gave"),
                        Some("cursor"),
                    )
                })?,
        };
        let range = filter.time.get_or_insert(TimeRange::ALL);
        range.to_us = range.to_us.min(anchor);
        let mut q = Query::new(filter);
        q.limit = Some(limit);
        q.skip = offset;
        q.newest_first = newest_first;
        let mut items = Vec::new();
        let totals = self.search(&mut q, &mut |ev| {
            items.push(event_json(ev));
            Ok(())
        })?;
        let next = (items.len() as u64 == limit).then(|| format!("{anchor}:{}", offset + limit));
        let msec = started.elapsed().as_secs_f64() * 1e3;
        Ok(Reply::json(
            200,
            &json!({"items": items, "number": totals.handed, "msec": msec, "next": next, "timedOut": totals.timed_out}),
        ))
    }

    /// `GET /api/v1/summary`: events per interval, top names and clients, rcode and qtype
    /// breakdowns, in one pass.
    fn api_summary(&self, pairs: &[(String, String)]) -> Result<Reply, Reply> {
        let started = Instant::now();
        let filter = conditions(pairs)?;
        let top = match param(pairs, "top") {
            None => 10,
            Some(t) => t
                .parse::<usize>()
                .ok()
                .filter(|&t| (1..=1000).contains(&t))
                .ok_or_else(|| {
                    Reply::error(
                        400,
                        &format!("top: `{t}` is not a number from 1 to 1000"),
                        Some("top"),
                    )
                })?,
        };
        let interval_us = match param(pairs, "interval") {
            Some(i) => match i.parse::<u64>() {
                Ok(secs) if secs > 0 => secs * 1_000_000,
                _ => search::parse_interval(i)
                    .map_err(|e| Reply::error(400, &format!("interval: {e}"), Some("interval")))?,
            },
            None => auto_interval(filter.range()),
        };
        let mut q = Query::new(filter);
        q.events = false;
        q.histogram_us = Some(interval_us);
        q.top = vec![
            (TopField::Qname, top),
            (TopField::Requestor, top),
            (TopField::Rcode, 64),
            (TopField::Qtype, 64),
        ];
        let totals = self.search(&mut q, &mut |_| Ok(()))?;
        let mut doc = Map::new();
        doc.insert("total".into(), json!(totals.number));
        doc.extend(totals.aggregates.to_json(&q));
        doc.insert("msec".into(), json!(started.elapsed().as_secs_f64() * 1e3));
        doc.insert("timedOut".into(), json!(totals.timed_out));
        Ok(Reply::json(200, &Value::Object(doc)))
    }

    /// `GET /api/v1/event/{id}`: every event with this messageId (a query and its response).
    fn api_event(&self, id: &str) -> Result<Reply, Reply> {
        let id_bytes = parse_id(id).map_err(|e| Reply::error(400, &e, Some("id")))?;
        let mut filter = crate::filter::Filter::default();
        filter.ids.push(id_bytes);
        let mut q = Query::new(filter);
        q.limit = Some(self.config.max_limit);
        let mut items = Vec::new();
        self.search(&mut q, &mut |ev| {
            items.push(event_json(ev));
            Ok(())
        })?;
        if items.is_empty() {
            return Err(Reply::error(
                404,
                &format!("no event has the id {id}"),
                None,
            ));
        }
        Ok(Reply::json(200, &json!({ "items": items })))
    }

    /// `GET /get-endpoint-data`: the dstore 1.x egateway search.
    fn get_endpoint_data(&self, pairs: &[(String, String)]) -> Result<Reply, Reply> {
        let mut conds: Vec<(String, String)> = Vec::new();
        // A flag is true when present bare or as 1/true/yes/on, false as 0/false/no/off.
        let flag = |k: &str| -> Result<bool, Reply> {
            match param(pairs, k) {
                None => Ok(false),
                Some("" | "1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(v) => Err(Reply::error(
                    400,
                    &format!("{k}: `{v}` is not true or false"),
                    Some(k),
                )),
            }
        };
        let (outgoing, only_responses, has_preason) = (
            flag("outgoing")?,
            flag("only_responses")?,
            flag("has_preason")?,
        );
        for (k, v) in pairs {
            match k.as_str() {
                "q" => conds.push(("q".into(), v.clone())),
                "start" => conds.push(("from".into(), v.clone())),
                "end" => conds.push(("to".into(), v.clone())),
                "preasons" => conds.extend(
                    v.split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| ("policy".to_string(), p.to_string())),
                ),
                "preasons_tags" => conds.extend(
                    v.split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| ("tag".to_string(), p.to_string())),
                ),
                "limit" | "has_preason" | "only_responses" | "outgoing" | "token" => {}
                other => {
                    return Err(Reply::error(
                        400,
                        &format!("`{other}` is not a parameter of get-endpoint-data"),
                        Some(other),
                    ))
                }
            }
        }
        let types: &[&str] = match (outgoing, only_responses) {
            (false, false) => &["query", "response"],
            (false, true) => &["response"],
            (true, false) => &["outgoing-query", "incoming-response"],
            (true, true) => &["incoming-response"],
        };
        conds.extend(types.iter().map(|t| ("type".to_string(), t.to_string())));
        // Errors speak of this endpoint's own names: start and end, not from and to.
        let mut filter = conditions_named(&conds, |k| match k {
            "from" => "start",
            "to" => "end",
            k => k,
        })?;
        filter.has_policy = has_preason;
        let mut q = Query::new(filter);
        q.limit = Some(self.limit(pairs, 100)?);
        q.newest_first = true;
        let mut items = Vec::new();
        self.search(&mut q, &mut |ev| {
            items.push(event_json(ev));
            Ok(())
        })?;
        Ok(Reply::json(200, &json!({ "items": items })))
    }

    fn metrics(&self) -> Reply {
        use std::fmt::Write as _;
        let m = &self.metrics;
        let mut out = String::new();
        let _ = writeln!(out, "# HELP dstore_gateway_requests_total Requests, by route.\n# TYPE dstore_gateway_requests_total counter");
        for (i, route) in ROUTES.iter().enumerate() {
            let _ = writeln!(
                out,
                "dstore_gateway_requests_total{{route=\"{route}\"}} {}",
                m.requests[i].load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP dstore_gateway_responses_total Responses, by status class.\n# TYPE dstore_gateway_responses_total counter");
        for (i, n) in m.by_status.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "dstore_gateway_responses_total{{status=\"{i}xx\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP dstore_gateway_request_seconds Time to answer a request.\n# TYPE dstore_gateway_request_seconds histogram");
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += m.latency[i].load(Relaxed);
            let _ = writeln!(
                out,
                "dstore_gateway_request_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += m.latency[LATENCY_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "dstore_gateway_request_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "dstore_gateway_request_seconds_sum {}",
            m.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "dstore_gateway_request_seconds_count {cumulative}");
        let (mut segments, mut bytes, mut events) = (0u64, 0u64, 0u64);
        for path in segment_paths(&self.config.storage_dir).unwrap_or_default() {
            if let Ok(s) = Segment::open(&path) {
                segments += 1;
                bytes += s.len;
                events += s.events();
            }
        }
        for (name, help, v) in [
            ("store_segments", "Segment files in the store.", segments),
            ("store_bytes", "Bytes of the store's segment files.", bytes),
            ("store_events", "Events in the store.", events),
            (
                "searches_running",
                "Searches running now.",
                self.searches.load(Relaxed) as u64,
            ),
        ] {
            let _ = writeln!(out, "# HELP dstore_gateway_{name} {help}\n# TYPE dstore_gateway_{name} gauge\ndstore_gateway_{name} {v}");
        }
        Reply::text(200, "text/plain; version=0.0.4", &out)
    }

    fn authorized(&self, request: &Request) -> bool {
        let Some(token) = &self.config.token else {
            return true;
        };
        request.headers().iter().any(|h| {
            h.field.equiv("Authorization")
                && h.value
                    .as_str()
                    .strip_prefix("Bearer ")
                    .is_some_and(|t| token_matches(t.trim().as_bytes(), token.as_bytes()))
        })
    }

    /// The router: one function per route.
    fn route(&self, request: &Request) -> (usize, Reply) {
        let url = request.url();
        let path = url.split('?').next().unwrap_or("/");
        let route = |name: &str| {
            ROUTES
                .iter()
                .position(|r| *r == name)
                .unwrap_or(ROUTES.len() - 1)
        };
        if url.len() > 8192 {
            return (
                route("other"),
                Reply::error(414, "the URL is too long", None),
            );
        }
        if !matches!(request.method(), Method::Get | Method::Head) {
            let mut r = Reply::error(405, "only GET and HEAD: the gateway is read-only", None);
            r.headers.push(("Allow", "GET, HEAD".into()));
            return (route("other"), r);
        }
        let public = matches!(
            path,
            "/" | "/index.html" | "/ui/app.js" | "/ui/app.css" | "/healthz"
        );
        if !public && !self.authorized(request) {
            let mut r = Reply::error(
                401,
                "a bearer token is needed: Authorization: Bearer <token>",
                None,
            );
            r.headers.push(("WWW-Authenticate", "Bearer".into()));
            return (route("other"), r);
        }
        let pairs = match query_pairs(url) {
            Ok(p) => p,
            Err(e) => {
                let parameter = e.split_once(": ").map(|(k, _)| k.to_string());
                return (route("other"), Reply::error(400, &e, parameter.as_deref()));
            }
        };
        let answer = |r: Result<Reply, Reply>| r.unwrap_or_else(|e| e);
        match path {
            "/" | "/index.html" => (
                route("ui"),
                Reply::text(200, "text/html; charset=utf-8", INDEX_HTML),
            ),
            "/ui/app.js" => (
                route("ui"),
                Reply::text(200, "text/javascript; charset=utf-8", APP_JS),
            ),
            "/ui/app.css" => (
                route("ui"),
                Reply::text(200, "text/css; charset=utf-8", APP_CSS),
            ),
            "/healthz" => (
                route("healthz"),
                Reply::text(200, "text/plain; charset=utf-8", "ok\n"),
            ),
            "/metrics" => (route("metrics"), self.metrics()),
            "/openapi.json" => (
                route("openapi"),
                Reply::text(200, "application/json", openapi::DOCUMENT),
            ),
            "/api/v1/search" => (route("search"), answer(self.api_search(&pairs))),
            "/api/v1/summary" => (route("summary"), answer(self.api_summary(&pairs))),
            "/get-endpoint-data" => (
                route("get-endpoint-data"),
                answer(self.get_endpoint_data(&pairs)),
            ),
            p => match p.strip_prefix("/api/v1/event/") {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    (route("event"), answer(self.api_event(id)))
                }
                _ => (
                    route("other"),
                    Reply::error(404, &format!("no such page: {path}"), None),
                ),
            },
        }
    }

    fn handle(&self, request: Request) {
        let started = Instant::now();
        let (route, reply) =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(&request))) {
                Ok(r) => r,
                Err(_) => {
                    self.log.info(&format!(
                        "a handler panicked on {} {}; answered 500",
                        request.method(),
                        request.url()
                    ));
                    (ROUTES.len() - 1, Reply::error(500, "internal error", None))
                }
            };
        let m = &self.metrics;
        m.requests[route].fetch_add(1, Relaxed);
        m.by_status[usize::from(reply.status / 100).min(5)].fetch_add(1, Relaxed);
        let mut response =
            Response::from_data(reply.body).with_status_code(StatusCode(reply.status));
        let mut headers = vec![
            ("Content-Type", reply.content_type.to_string()),
            ("X-Content-Type-Options", "nosniff".into()),
            ("Cache-Control", "no-store".into()),
        ];
        headers.extend(reply.headers);
        for (k, v) in headers {
            if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                response.add_header(h);
            }
        }
        let _ = request.respond(response);
        let secs = started.elapsed().as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        m.latency[bucket].fetch_add(1, Relaxed);
        m.latency_sum_us.fetch_add((secs * 1e6) as u64, Relaxed);
    }
}

/// A histogram interval that gives at most about 120 bars over the range.
fn auto_interval(range: TimeRange) -> u64 {
    const NICE: [u64; 13] = [
        1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 86_400, 604_800,
    ];
    if range.from_us == 0 || range.to_us == u64::MAX {
        return 3600 * 1_000_000;
    }
    let span = (range.to_us.min(now_us()).saturating_sub(range.from_us)) / 1_000_000;
    NICE.iter()
        .copied()
        .find(|n| span / n <= 120)
        .unwrap_or(604_800)
        * 1_000_000
}

/// Serves until the process is stopped.
pub fn run(config: GatewayConfig) -> anyhow::Result<()> {
    let log = Log::new("dstore gateway", None)?;
    let server = tiny_http::Server::http(config.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let shown = server
        .server_addr()
        .to_ip()
        .map_or_else(|| config.listen.to_string(), |a| a.to_string());
    log.info(&format!(
        "serving {} on http://{shown}/ ({})",
        config.storage_dir.display(),
        if config.token.is_some() {
            "a bearer token is required for the API"
        } else {
            "loopback only, no token"
        }
    ));
    let server = Arc::new(server);
    let state = Arc::new(State {
        metrics: Metrics::default(),
        searches: AtomicUsize::new(0),
        log,
        config,
    });
    let workers: Vec<_> = (0..state.config.workers.max(1))
        .map(|i| {
            let (server, state) = (server.clone(), state.clone());
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    for request in server.incoming_requests() {
                        state.handle(request);
                    }
                })
        })
        .collect::<Result<_, _>>()?;
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_tokens() {
        let p = query_pairs("/api/v1/search?q=www.example.com+rcode%3A%210&qtype=A&x").unwrap();
        assert_eq!(
            p,
            vec![
                ("q".into(), "www.example.com rcode:!0".into()),
                ("qtype".into(), "A".into()),
                ("x".into(), "".into())
            ]
        );
        assert!(query_pairs("/?q=%zz").is_err());
        assert!(query_pairs("/?q=%ff").is_err());
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret1", b"secret"));
    }

    #[test]
    fn intervals_give_at_most_about_120_bars() {
        let hour = TimeRange {
            from_us: now_us() - 3_600_000_000,
            to_us: u64::MAX,
        };
        assert_eq!(auto_interval(TimeRange::ALL), 3_600_000_000);
        let i = auto_interval(TimeRange {
            to_us: now_us(),
            ..hour
        });
        assert_eq!(i, 30_000_000);
    }
}
