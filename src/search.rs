//! The search engine behind `dstore grep` and the HTTP gateway: walks the store's segments and
//! blocks in time order (or newest first), skips what the time index and block summaries rule out,
//! decides from columns where it can, decodes blocks on several threads, and hands matching events
//! to the caller in order, gathering top-N tables and a histogram on the way.

use crate::dns::{qtype_name, rcode_name};
use crate::event_json::address_text;
use crate::filter::{self, Filter, View};
use crate::format::codec::Columns;
use crate::format::segment::BlockRef;
use crate::format::{segment_paths, Decoded, Segment, StoredEvent};
use crate::net::Cidr;
use crate::timespec::{parse_duration, parse_time};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

/// A field that top-N tables count.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TopField {
    Qname,
    Requestor,
    Responder,
    Qtype,
    Rcode,
    Answer,
}

impl TopField {
    pub fn parse(s: &str) -> Result<TopField, String> {
        Ok(match s {
            "qname" => TopField::Qname,
            "requestor" => TopField::Requestor,
            "responder" => TopField::Responder,
            "qtype" => TopField::Qtype,
            "rcode" => TopField::Rcode,
            "answer" => TopField::Answer,
            other => {
                return Err(format!(
                    "`{other}` is not one of qname, requestor, responder, qtype, rcode, answer"
                ))
            }
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            TopField::Qname => "qname",
            TopField::Requestor => "requestor",
            TopField::Responder => "responder",
            TopField::Qtype => "qtype",
            TopField::Rcode => "rcode",
            TopField::Answer => "answer",
        }
    }
}

/// A search: the filter, and what to gather.
#[derive(Clone, Debug)]
pub struct Query {
    pub filter: Filter,
    /// Stop after handing out this many events (aggregates still see every match).
    pub limit: Option<u64>,
    /// Skip this many matches first (for paging).
    pub skip: u64,
    pub newest_first: bool,
    /// Whether the caller wants the events, or only their number.
    pub events: bool,
    pub top: Vec<(TopField, usize)>,
    pub histogram_us: Option<u64>,
    pub threads: usize,
    /// Stop searching at this moment; the result says it was cut short.
    pub deadline: Option<Instant>,
}

impl Query {
    pub fn new(filter: Filter) -> Query {
        Query {
            filter,
            limit: None,
            skip: 0,
            newest_first: false,
            events: true,
            top: Vec::new(),
            histogram_us: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            deadline: None,
        }
    }

    fn aggregating(&self) -> bool {
        !self.top.is_empty() || self.histogram_us.is_some()
    }

    /// Whether matching events must be looked at one by one (not only counted).
    fn needs_events(&self) -> bool {
        self.events || self.aggregating()
    }
}

/// What a search found besides the events it handed out.
#[derive(Debug, Default)]
pub struct Totals {
    /// Matching events (all of them, or as far as the limit let the search go).
    pub number: u64,
    /// Events handed to the caller.
    pub handed: u64,
    pub damage: Vec<String>,
    pub aggregates: Aggregates,
    /// The deadline cut the search short.
    pub timed_out: bool,
}

/// Top-N counts and the histogram, gathered over the matches.
#[derive(Debug, Default)]
pub struct Aggregates {
    top: Vec<HashMap<String, u64>>,
    histogram: BTreeMap<u64, u64>,
}

impl Aggregates {
    fn merge(&mut self, other: Aggregates) {
        for (t, n) in other.histogram {
            *self.histogram.entry(t).or_insert(0) += n;
        }
        self.top
            .resize_with(self.top.len().max(other.top.len()), HashMap::new);
        for (mine, theirs) in self.top.iter_mut().zip(other.top) {
            for (k, n) in theirs {
                *mine.entry(k).or_insert(0) += n;
            }
        }
    }

    /// Counts one value of top table `i`.
    fn count(&mut self, i: usize, key: String) {
        if self.top.len() <= i {
            self.top.resize_with(i + 1, HashMap::new);
        }
        *self.top[i].entry(key).or_insert(0) += 1;
    }

    fn add(&mut self, q: &Query, ev: &StoredEvent) {
        self.add_time(q, ev.time_us);
        if !ev.undecodable() {
            self.add_tops(q, ev.frame);
        }
    }

    fn add_time(&mut self, q: &Query, time_us: u64) {
        if let Some(interval) = q.histogram_us {
            *self
                .histogram
                .entry(time_us / interval * interval)
                .or_insert(0) += 1;
        }
    }

    /// Counts a decodable frame's values in the top tables.
    fn add_tops(&mut self, q: &Query, frame: &[u8]) {
        if q.top.is_empty() {
            return;
        }
        self.top.resize_with(q.top.len(), HashMap::new);
        let v = View::parse(frame);
        for (i, (field, _)) in q.top.iter().enumerate() {
            let mut add = |key: String| *self.top[i].entry(key).or_insert(0) += 1;
            match field {
                TopField::Qname => v.qname.into_iter().for_each(|q| {
                    // One row per name, however it was written: lowercase, with its trailing dot.
                    let mut key =
                        String::from_utf8_lossy(crate::format::summary::name_key(q).as_slice())
                            .into_owned();
                    key.push('.');
                    add(key)
                }),
                TopField::Requestor => v.from.into_iter().for_each(|a| add(address_text(a))),
                TopField::Responder => v.to.into_iter().for_each(|a| add(address_text(a))),
                TopField::Qtype => v
                    .qtype
                    .into_iter()
                    .for_each(|t| add(qtype_name(t).into_owned())),
                TopField::Rcode => v
                    .rcode
                    .into_iter()
                    .for_each(|r| add(rcode_name(r).into_owned())),
                TopField::Answer => {
                    for (_, kind, rdata) in &v.records {
                        if let Some(d) = rdata {
                            add(if matches!(kind, Some(1 | 28)) {
                                address_text(d)
                            } else {
                                String::from_utf8_lossy(d).into_owned()
                            });
                        }
                    }
                }
            }
        }
    }

    /// `{"top": {"qname": [{"value", "count"}...]}, "histogram": {"interval", "buckets": [{"time", "count"}]}}`
    pub fn to_json(&self, q: &Query) -> Map<String, Value> {
        let mut out = Map::new();
        if !q.top.is_empty() {
            let mut tops = Map::new();
            for (i, (field, n)) in q.top.iter().enumerate() {
                let mut rows: Vec<(&String, &u64)> = self
                    .top
                    .get(i)
                    .map(|m| m.iter().collect())
                    .unwrap_or_default();
                rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                let rows: Vec<Value> = rows
                    .into_iter()
                    .take(*n)
                    .map(|(v, c)| json!({"value": v, "count": c}))
                    .collect();
                tops.insert(field.name().into(), Value::Array(rows));
            }
            out.insert("top".into(), Value::Object(tops));
        }
        if let Some(interval) = q.histogram_us {
            let buckets: Vec<Value> = self
                .histogram
                .iter()
                .map(|(t, c)| json!({"time": t / 1_000_000, "count": c}))
                .collect();
            out.insert(
                "histogram".into(),
                json!({"interval": interval / 1_000_000, "buckets": buckets}),
            );
        }
        out
    }
}

/// What a worker made of one block.
enum Outcome {
    Skipped,
    Counted(u64),
    /// Matches counted and aggregated in the worker, from columns.
    Aggregated(u64, Aggregates),
    Matched(Vec<u32>),
    Damaged(String),
}

#[derive(Default)]
struct Work {
    decoded: Decoded,
    columns: Columns,
    buf: Vec<u8>,
}

fn process(q: &Query, segment: &Segment, block: &BlockRef, work: &mut Work) -> Outcome {
    let f = &q.filter;
    let covered = f
        .range()
        .covers(block.header.min_time_us, block.header.max_time_us);
    let needs_events = q.needs_events();
    if f.has_field_conditions() || !needs_events {
        match segment.read_summary(block, &mut work.buf) {
            Some(summary) => {
                if !f.block_may_match(&summary) {
                    return Outcome::Skipped;
                }
                if covered && !needs_events {
                    if let Some(n) =
                        f.count_from_summary(&summary, u64::from(block.header.event_count))
                    {
                        return Outcome::Counted(n);
                    }
                }
            }
            None if covered && !needs_events && !f.has_field_conditions() => {
                return Outcome::Counted(u64::from(block.header.event_count));
            }
            None => {}
        }
    }
    let payload = match segment.read_payload(block, &mut work.buf) {
        Ok(p) => p,
        Err(e) => return Outcome::Damaged(e.to_string()),
    };
    let damaged = |e: crate::format::block::PayloadError| {
        Outcome::Damaged(segment.block_error(block.offset, e.to_string()).to_string())
    };
    if let Some(outcome) = aggregate_from_columns(q, segment, block, payload, &mut work.columns) {
        return outcome;
    }
    // Decide from the fields' columns alone when the filter allows; rebuild the frames only when
    // there are matches to hand out.
    let mut from_columns = None;
    if let Some(fields) = f.columns().filter(|_| f.has_field_conditions()) {
        let paths: Vec<&[u32]> = fields.iter().map(|x| x.path()).collect();
        match crate::format::block::decode_payload_columns(
            &block.header,
            payload,
            &paths,
            &mut work.columns,
        ) {
            Err(e) => return damaged(e),
            Ok(true) => {
                let c = &work.columns;
                let matched: Vec<u32> = (0..c.len())
                    .filter(|&i| f.matches_columns(c, &fields, i))
                    .map(|i| i as u32)
                    .collect();
                if !needs_events {
                    return Outcome::Counted(matched.len() as u64);
                }
                if matched.is_empty() {
                    return Outcome::Matched(matched);
                }
                from_columns = Some(matched);
            }
            Ok(false) => {}
        }
    }
    if let Err(e) = crate::format::block::decode_payload(&block.header, payload, &mut work.decoded)
    {
        return damaged(e);
    }
    let d = &work.decoded;
    let mut matched: Vec<u32> = from_columns.unwrap_or_else(|| {
        (0..d.len())
            .filter(|&i| {
                f.matches(&StoredEvent {
                    frame: d.frame(i),
                    time_us: d.times[i],
                    flags: d.flags[i],
                })
            })
            .map(|i| i as u32)
            .collect()
    });
    if q.newest_first {
        matched.sort_by_key(|&i| std::cmp::Reverse(d.times[i as usize]));
    } else if !d.times.is_sorted() {
        matched.sort_by_key(|&i| d.times[i as usize]);
    }
    if needs_events {
        Outcome::Matched(matched)
    } else {
        Outcome::Counted(matched.len() as u64)
    }
}

/// The segments that may hold events of the query's time range, opened once, in the order of
/// their events' times (their first event's when oldest first, their last event's when newest
/// first) so that data imported out of order still comes out in time order as far as segments
/// allow; the sequence breaks ties. A segment removed by a rotate since the listing is skipped.
fn open_in_time_order(
    dir: &Path,
    q: &Query,
    totals: &mut Totals,
) -> Result<Vec<Segment>, SearchError> {
    let range = q.filter.range();
    let mut keyed = Vec::new();
    for path in segment_paths(dir).map_err(SearchError::Store)? {
        let segment = match Segment::open(&path) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                totals.damage.push(e.to_string());
                continue;
            }
        };
        for d in &segment.damage {
            totals.damage.push(format!(
                "{}: damaged data at offset {}: {}",
                path.display(),
                d.offset,
                d.what
            ));
        }
        let Some((min, max)) = segment.time_range() else {
            continue;
        };
        if range.overlaps(min, max) {
            keyed.push((if q.newest_first { u64::MAX - max } else { min }, segment));
        }
    }
    keyed.sort_by_key(|(key, _)| *key);
    Ok(keyed.into_iter().map(|(_, s)| s).collect())
}

/// The field of a top table, when its column can give it.
fn top_field(t: TopField) -> Option<crate::filter::Field> {
    use crate::filter::Field;
    match t {
        TopField::Qname => Some(Field::Qname),
        TopField::Requestor => Some(Field::From),
        TopField::Responder => Some(Field::To),
        TopField::Qtype => Some(Field::Qtype),
        TopField::Rcode => Some(Field::Rcode),
        TopField::Answer => None,
    }
}

/// Counts and aggregates a block's matches from columns alone, in the worker, when the caller
/// wants no events and every condition and top table can be read from columns.
fn aggregate_from_columns(
    q: &Query,
    segment: &Segment,
    block: &BlockRef,
    payload: &[u8],
    columns: &mut Columns,
) -> Option<Outcome> {
    if q.events || !q.aggregating() {
        return None;
    }
    let f = &q.filter;
    let mut fields = f.columns()?;
    let tops: Vec<crate::filter::Field> = q
        .top
        .iter()
        .map(|(t, _)| top_field(*t))
        .collect::<Option<_>>()?;
    for t in &tops {
        if !fields.contains(t) {
            fields.push(*t);
        }
    }
    let paths: Vec<&[u32]> = fields.iter().map(|x| x.path()).collect();
    match crate::format::block::decode_payload_columns(&block.header, payload, &paths, columns) {
        Err(e) => {
            return Some(Outcome::Damaged(
                segment.block_error(block.offset, e.to_string()).to_string(),
            ))
        }
        Ok(false) => return None,
        Ok(true) => {}
    }
    let c = &*columns;
    let mut agg = Aggregates::default();
    let mut number = 0;
    let slots: Vec<usize> = tops
        .iter()
        .map(|t| fields.iter().position(|x| x == t).unwrap_or(0))
        .collect();
    for i in 0..c.len() {
        let matched = if f.has_field_conditions() {
            f.matches_columns(c, &fields, i)
        } else {
            f.range().contains(c.times[i])
        };
        if !matched {
            continue;
        }
        number += 1;
        agg.add_time(q, c.times[i]);
        if c.undecodable(i) {
            continue;
        }
        if let Some(frame) = c.opaque_frame(i) {
            agg.add_tops(q, frame);
            continue;
        }
        for (slot, (&w, (field, _))) in slots.iter().zip(&q.top).enumerate() {
            let key = match field {
                TopField::Qname => c.bytes(w, i).map(|b| {
                    let mut k =
                        String::from_utf8_lossy(&crate::format::summary::name_key(b)).into_owned();
                    k.push('.');
                    k
                }),
                TopField::Requestor | TopField::Responder => c.bytes(w, i).map(address_text),
                TopField::Qtype => c.number(w, i).map(|t| qtype_name(t as u32).into_owned()),
                TopField::Rcode => c.number(w, i).map(|r| rcode_name(r as u32).into_owned()),
                TopField::Answer => None,
            };
            if let Some(key) = key {
                agg.count(slot, key);
            }
        }
    }
    Some(Outcome::Aggregated(number, agg))
}

/// Runs `q` over the store in `dir`, handing each matching event to `on_event` in order.
pub fn run(
    dir: &Path,
    q: &Query,
    on_event: &mut dyn FnMut(&StoredEvent) -> std::io::Result<()>,
) -> Result<Totals, SearchError> {
    let mut totals = Totals::default();
    let segments = open_in_time_order(dir, q, &mut totals)?;
    // Each thread takes a run of consecutive blocks per round, so that threads start once per
    // round of `threads × BLOCKS_PER_THREAD` blocks rather than once per block.
    const BLOCKS_PER_THREAD: usize = 8;
    let threads = q.threads.max(1);
    // A search that stops at a limit takes one block per thread per round: most often the first
    // blocks already give enough.
    let per_thread = if threads == 1 || (q.limit.is_some() && !q.aggregating()) {
        1
    } else {
        BLOCKS_PER_THREAD
    };
    let mut work: Vec<Work> = (0..threads * per_thread).map(|_| Work::default()).collect();
    let range = q.filter.range();
    let mut skipped = 0u64;
    'segments: for segment in &segments {
        let mut blocks: Vec<&BlockRef> = segment
            .blocks
            .iter()
            .filter(|b| range.overlaps(b.header.min_time_us, b.header.max_time_us))
            .collect();
        // Blocks in time order too: an import of older data after newer lands later in a segment.
        if q.newest_first {
            blocks.sort_by_key(|b| std::cmp::Reverse(b.header.max_time_us));
        } else {
            blocks.sort_by_key(|b| b.header.min_time_us);
        }
        for chunk in blocks.chunks(work.len()) {
            if q.deadline.is_some_and(|d| Instant::now() >= d) {
                totals.timed_out = true;
                break 'segments;
            }
            let outcomes: Vec<Outcome> = if threads == 1 || chunk.len() == 1 {
                chunk
                    .iter()
                    .zip(work.iter_mut())
                    .map(|(block, w)| process(q, segment, block, w))
                    .collect()
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .chunks(per_thread)
                        .zip(work.chunks_mut(per_thread))
                        .map(|(blocks, works)| {
                            let segment = &segment;
                            scope.spawn(move || {
                                blocks
                                    .iter()
                                    .zip(works.iter_mut())
                                    .map(|(block, w)| process(q, segment, block, w))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .zip(chunk.chunks(per_thread))
                        .flat_map(|(h, blocks)| {
                            h.join().unwrap_or_else(|_| {
                                blocks
                                    .iter()
                                    .map(|_| Outcome::Damaged("a search thread panicked".into()))
                                    .collect()
                            })
                        })
                        .collect()
                })
            };
            for (outcome, w) in outcomes.into_iter().zip(work.iter()) {
                match outcome {
                    Outcome::Skipped => {}
                    Outcome::Damaged(e) => totals.damage.push(e),
                    Outcome::Counted(n) => totals.number += n,
                    Outcome::Aggregated(n, agg) => {
                        totals.number += n;
                        totals.aggregates.merge(agg);
                    }
                    Outcome::Matched(indices) => {
                        let d = &w.decoded;
                        for i in indices.into_iter().map(|i| i as usize) {
                            let ev = StoredEvent {
                                frame: d.frame(i),
                                time_us: d.times[i],
                                flags: d.flags[i],
                            };
                            totals.number += 1;
                            if q.aggregating() {
                                totals.aggregates.add(q, &ev);
                            }
                            if skipped < q.skip {
                                skipped += 1;
                                continue;
                            }
                            if q.limit.is_some_and(|l| totals.handed >= l) {
                                if q.aggregating() {
                                    continue;
                                }
                                totals.number -= 1;
                                break 'segments;
                            }
                            if q.events {
                                on_event(&ev).map_err(SearchError::Output)?;
                            }
                            totals.handed += 1;
                        }
                    }
                }
            }
        }
    }
    if !q.events {
        if let Some(limit) = q.limit {
            totals.number = totals.number.min(limit);
        }
    }
    Ok(totals)
}

#[derive(Debug)]
pub enum SearchError {
    Store(crate::format::Error),
    Output(std::io::Error),
}

impl std::fmt::Display for SearchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchError::Store(e) => write!(f, "cannot list the store: {e}"),
            SearchError::Output(e) => write!(f, "cannot write the results: {e}"),
        }
    }
}

impl std::error::Error for SearchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SearchError::Store(e) => Some(e),
            SearchError::Output(e) => Some(e),
        }
    }
}

/// Builds a filter from named conditions, as the command line and the HTTP API give them: `from`,
/// `to`, `last`, `qname`, `domain`, `qname-regex`, `qname-glob`, `qtype`, `rcode`, `type`,
/// `requestor`, `responder`, `answer`, `ecs`, `id`, `policy`, `tag`, `server-identity`,
/// `requestor-id`, `device-id`, `device-name`, `protocol`, and `q` (1.x search words, space
/// separated). Underscores may stand for hyphens. Errors name the condition and say why.
pub fn filter_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    now_us: u64,
) -> Result<Filter, String> {
    let mut f = Filter::default();
    let (mut from, mut to) = (None, None);
    for (key, value) in pairs {
        let key = key.replace('_', "-");
        let err = |e: String| format!("{key}: {e}");
        let cidr = |v: &str| v.parse::<Cidr>().map_err(err);
        match key.as_str() {
            "from" => from = Some(parse_time(value, now_us).map_err(err)?),
            "to" => to = Some(parse_time(value, now_us).map_err(err)?),
            "last" => from = Some(now_us.saturating_sub(parse_duration(value).map_err(err)?)),
            "qname" => f.qnames.push(filter::parse_name(value).map_err(err)?),
            "domain" => f.domains.push(filter::parse_name(value).map_err(err)?),
            "qname-regex" => f.qname_regex = Some(filter::compile_regex(value).map_err(err)?),
            "qname-glob" => f.qname_regex = Some(filter::glob_regex(value).map_err(err)?),
            "qtype" => f.qtypes.push(filter::parse_qtype(value).map_err(err)?),
            "rcode" => match filter::parse_rcode(value).map_err(err)? {
                (true, code) => f.rcodes_not.push(code),
                (false, code) => f.rcodes.push(code),
            },
            "type" => f.types.push(filter::parse_type(value).map_err(err)?),
            "requestor" => f.requestors.push(cidr(value)?),
            "responder" => f.responders.push(cidr(value)?),
            "answer" => f.answers.push(filter::parse_answer(value).map_err(err)?),
            "ecs" => f.ecs.push(cidr(value)?),
            "id" => f.ids.push(filter::parse_id(value).map_err(err)?),
            "policy" => f.policies.push(value.as_bytes().to_vec()),
            "tag" => f.tags.push(value.as_bytes().to_vec()),
            "server-identity" => f.server_identities.push(value.as_bytes().to_vec()),
            "requestor-id" => f.requestor_ids.push(value.as_bytes().to_vec()),
            "device-id" => f.device_ids.push(value.as_bytes().to_vec()),
            "device-name" => f.device_names.push(value.as_bytes().to_vec()),
            "protocol" => f
                .protocols
                .push(filter::parse_protocol(value).map_err(err)?),
            "q" => {
                for word in value.split_whitespace() {
                    filter::add_term(&mut f, word, now_us).map_err(err)?;
                }
            }
            _ => return Err(format!("{key}: not a search condition")),
        }
    }
    if from.is_some() || to.is_some() {
        let range = f.time.get_or_insert(crate::format::TimeRange::ALL);
        if let Some(from) = from {
            range.from_us = range.from_us.max(from);
        }
        if let Some(to) = to {
            range.to_us = to;
        }
    }
    if let Some(r) = f.time {
        if r.from_us >= r.to_us {
            return Err("from: must be before to (the time range is empty)".into());
        }
    }
    Ok(f)
}

/// `1m`, `1h`, `30s` as microseconds, for histograms.
pub fn parse_interval(text: &str) -> Result<u64, String> {
    parse_duration(text)
        .ok()
        .filter(|&d| d > 0)
        .ok_or_else(|| format!("`{text}` is not an interval such as 1m"))
}
