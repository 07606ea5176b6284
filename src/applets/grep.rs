//! `dstore grep` (1.x `dgrep`): finds events by time, name, type, code, address, answer, id, policy
//! and more, and prints the 1.x JSON document, JSON lines, raw frames, a count, top-N tables or a
//! histogram. Blocks outside the time range are never read; blocks whose summary rules the search
//! out are never opened; blocks are decoded on several threads.

use crate::config::StoreArgs;
use crate::dns::{qtype_name, rcode_name};
use crate::event_json::{address_text, frame_to_json, EventMeta};
use crate::filter::{self, Filter, View};
use crate::format::codec::Columns;
use crate::format::segment::BlockRef;
use crate::format::store::now_us;
use crate::format::{segment_paths, Decoded, Segment, StoredEvent, TimeRange};
use crate::frame::{write_frame, FrameWidth};
use crate::net::Cidr;
use crate::timespec::{parse_duration, parse_time};
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// Search the store. Conditions of different kinds must all hold; repeating one gives alternatives.
/// Times select --from (inclusive) up to --to (exclusive). Exit status: 0 found, 1 nothing found,
/// 2 error.
#[derive(Parser, Debug)]
#[command(
    after_help = "1.x search words may follow the options: t=week (or hour, day, month, 2h, 7d), pr=POLICY,\n\
~ANSWER, =MESSAGE-ID, c:REQUESTOR-ID, d:DEVICE-ID, dn:DEVICE-NAME, rcode:3 or rcode:!0, an address or\n\
range (either side), or a domain name (it and every name under it).\n\n\
Examples:\n  dgrep t=week pr=spamhaus-dbl | jq\n  dstore grep --last 1h --domain example.com --rcode NXDOMAIN --ndjson\n  dstore grep --from -1d --top qname 10 --count"
)]
struct Args {
    /// 1.x search words (see below)
    #[arg(value_name = "TERM")]
    terms: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Events at or after this time (unix seconds, RFC 3339, now, -15m, -2h, -7d)
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Events before this time
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Events of the last DURATION (1h, 30m, 7d)
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    last: Option<String>,
    /// Exactly this query name (any case, trailing dot optional)
    #[arg(long, value_name = "NAME")]
    qname: Vec<String>,
    /// This name and every name under it
    #[arg(long, value_name = "NAME")]
    domain: Vec<String>,
    /// Query names matching this regular expression (case-insensitive)
    #[arg(long, value_name = "RE")]
    qname_regex: Option<String>,
    /// Query names matching this glob (`*`, `?`)
    #[arg(long, value_name = "GLOB", conflicts_with = "qname_regex")]
    qname_glob: Option<String>,
    /// Query type: A, AAAA, MX, ... or a number
    #[arg(long, value_name = "QTYPE")]
    qtype: Vec<String>,
    /// Response code: NOERROR, NXDOMAIN, SERVFAIL, ... or a number; `!` negates
    #[arg(long, value_name = "RCODE", allow_hyphen_values = true)]
    rcode: Vec<String>,
    /// Message type: query, response, outgoing-query, incoming-response
    #[arg(long = "type", value_name = "TYPE")]
    kind: Vec<String>,
    /// Client address or range
    #[arg(long, value_name = "CIDR")]
    requestor: Vec<String>,
    /// Server address or range
    #[arg(long, value_name = "CIDR")]
    responder: Vec<String>,
    /// An address or range in the A/AAAA answers, or a name in any answer record
    #[arg(long, value_name = "IP|CIDR|NAME")]
    answer: Vec<String>,
    /// EDNS client subnet address or range
    #[arg(long, value_name = "CIDR")]
    ecs: Vec<String>,
    /// Message id (a query and its response share it)
    #[arg(long, value_name = "UUID")]
    id: Vec<String>,
    /// Applied policy (1.x preason), any case
    #[arg(long, value_name = "TEXT")]
    policy: Vec<String>,
    /// Policy tag
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    server_identity: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    requestor_id: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    device_id: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    device_name: Vec<String>,
    /// udp, tcp, dot, doh, doq, dnscrypt-udp, dnscrypt-tcp
    #[arg(long, value_name = "PROTO")]
    protocol: Vec<String>,
    /// One JSON object per line instead of the 1.x document
    #[arg(long, conflicts_with_all = ["raw", "count"])]
    ndjson: bool,
    /// The matching frames, length-prefixed, replayable
    #[arg(long, conflicts_with = "count")]
    raw: bool,
    /// Only the number of matching events
    #[arg(long)]
    count: bool,
    /// At most N events
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Newest first
    #[arg(long)]
    reverse: bool,
    /// The N most frequent values of FIELD among the matches: qname, requestor, responder, qtype, rcode, answer
    #[arg(long, num_args = 2, value_names = ["FIELD", "N"])]
    top: Vec<String>,
    /// Matching events per interval (1m, 1h, ...)
    #[arg(long, value_name = "INTERVAL")]
    histogram: Option<String>,
    /// Threads decoding blocks [default: the number of cores]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub fn command() -> Command {
    Args::command()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TopField {
    Qname,
    Requestor,
    Responder,
    Qtype,
    Rcode,
    Answer,
}

/// What to print, parsed before any I/O.
struct Plan {
    filter: Filter,
    output: Output,
    limit: Option<u64>,
    reverse: bool,
    top: Option<(TopField, usize)>,
    histogram_us: Option<u64>,
    threads: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Document,
    Lines,
    Raw,
    Count,
}

fn each<T>(
    values: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
    flag: &str,
) -> Result<Vec<T>> {
    values
        .iter()
        .map(|v| parse(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
        .collect()
}

fn cidr(s: &str) -> Result<Cidr, String> {
    s.parse()
}

fn plan(args: &Args) -> Result<Plan> {
    let now = now_us();
    let mut f = Filter::default();
    let time = |flag: &str, t: &Option<String>| -> Result<Option<u64>> {
        t.as_deref()
            .map(|t| parse_time(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
    };
    let mut range = TimeRange::ALL;
    let mut timed = false;
    if let Some(from) = time("from", &args.from)? {
        range.from_us = from;
        timed = true;
    }
    if let Some(to) = time("to", &args.to)? {
        range.to_us = to;
        timed = true;
    }
    if let Some(last) = &args.last {
        range.from_us =
            now.saturating_sub(parse_duration(last).map_err(|e| anyhow::anyhow!("--last: {e}"))?);
        timed = true;
    }
    if timed {
        f.time = Some(range);
    }
    f.qnames = each(&args.qname, filter::parse_name, "qname")?;
    f.domains = each(&args.domain, filter::parse_name, "domain")?;
    f.qname_regex = match (&args.qname_regex, &args.qname_glob) {
        (Some(re), _) => {
            Some(filter::compile_regex(re).map_err(|e| anyhow::anyhow!("--qname-regex: {e}"))?)
        }
        (None, Some(g)) => {
            Some(filter::glob_regex(g).map_err(|e| anyhow::anyhow!("--qname-glob: {e}"))?)
        }
        (None, None) => None,
    };
    f.qtypes = each(&args.qtype, filter::parse_qtype, "qtype")?;
    for (negated, code) in each(&args.rcode, filter::parse_rcode, "rcode")? {
        if negated {
            f.rcodes_not.push(code);
        } else {
            f.rcodes.push(code);
        }
    }
    f.types = each(&args.kind, filter::parse_type, "type")?;
    f.requestors = each(&args.requestor, cidr, "requestor")?;
    f.responders = each(&args.responder, cidr, "responder")?;
    f.answers = each(&args.answer, filter::parse_answer, "answer")?;
    f.ecs = each(&args.ecs, cidr, "ecs")?;
    f.ids = each(&args.id, filter::parse_id, "id")?;
    let text = |v: &[String]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    f.policies = text(&args.policy);
    f.tags = text(&args.tag);
    f.server_identities = text(&args.server_identity);
    f.requestor_ids = text(&args.requestor_id);
    f.device_ids = text(&args.device_id);
    f.device_names = text(&args.device_name);
    f.protocols = each(&args.protocol, filter::parse_protocol, "protocol")?;
    for term in &args.terms {
        filter::add_term(&mut f, term, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if let Some(r) = f.time {
        if r.from_us >= r.to_us {
            bail!("the time range is empty: --from must be before --to");
        }
    }
    let top = match args.top.as_slice() {
        [] => None,
        [field, n] => {
            let field = match field.as_str() {
                "qname" => TopField::Qname,
                "requestor" => TopField::Requestor,
                "responder" => TopField::Responder,
                "qtype" => TopField::Qtype,
                "rcode" => TopField::Rcode,
                "answer" => TopField::Answer,
                other => bail!("--top: `{other}` is not one of qname, requestor, responder, qtype, rcode, answer"),
            };
            let n: usize = n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("--top: `{n}` is not a positive number"))?;
            Some((field, n))
        }
        _ => bail!("--top takes a field and a number"),
    };
    let histogram_us = match &args.histogram {
        Some(h) => Some(
            parse_duration(h)
                .ok()
                .filter(|&d| d > 0)
                .with_context(|| format!("--histogram: `{h}` is not an interval such as 1m"))?,
        ),
        None => None,
    };
    let output = if args.count {
        Output::Count
    } else if args.raw {
        Output::Raw
    } else if args.ndjson {
        Output::Lines
    } else {
        Output::Document
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    Ok(Plan {
        filter: f,
        output,
        limit: args.limit,
        reverse: args.reverse,
        top,
        histogram_us,
        threads,
    })
}

/// What a worker made of one block.
enum Outcome {
    Skipped,
    Counted(u64),
    Matched(Vec<u32>),
    Damaged(crate::format::Error),
}

#[derive(Default)]
struct Work {
    decoded: Decoded,
    columns: Columns,
    buf: Vec<u8>,
}

impl Plan {
    /// Whether printing needs the events themselves (not only their number).
    fn needs_events(&self) -> bool {
        self.output != Output::Count || self.top.is_some() || self.histogram_us.is_some()
    }

    fn process(&self, segment: &Segment, block: &BlockRef, work: &mut Work) -> Outcome {
        let f = &self.filter;
        let (min, max) = (block.header.min_time_us, block.header.max_time_us);
        let covered = f.range().covers(min, max);
        if f.has_field_conditions() || !self.needs_events() {
            if let Some(summary) = segment.read_summary(block, &mut work.buf) {
                if !f.block_may_match(&summary) {
                    return Outcome::Skipped;
                }
                if covered && !self.needs_events() {
                    if let Some(n) =
                        f.count_from_summary(&summary, u64::from(block.header.event_count))
                    {
                        return Outcome::Counted(n);
                    }
                }
            } else if covered && !self.needs_events() && !f.has_field_conditions() {
                return Outcome::Counted(u64::from(block.header.event_count));
            }
        }
        let payload = match segment.read_payload(block, &mut work.buf) {
            Ok(p) => p,
            Err(e) => return Outcome::Damaged(e),
        };
        let damaged = |e: crate::format::block::PayloadError| {
            Outcome::Damaged(segment.block_error(block.offset, e.to_string()))
        };
        // Decide from the fields' columns alone when the filter allows; rebuild the frames only
        // when there are matches to print.
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
                    if !self.needs_events() {
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
        if let Err(e) =
            crate::format::block::decode_payload(&block.header, payload, &mut work.decoded)
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
        if self.reverse {
            matched.sort_by_key(|&i| std::cmp::Reverse(d.times[i as usize]));
        } else if !d.times.is_sorted() {
            matched.sort_by_key(|&i| d.times[i as usize]);
        }
        if self.needs_events() {
            Outcome::Matched(matched)
        } else {
            Outcome::Counted(matched.len() as u64)
        }
    }
}

/// Top-N and histogram, gathered as matches are printed.
#[derive(Default)]
struct Aggregates {
    top: HashMap<String, u64>,
    histogram: BTreeMap<u64, u64>,
}

impl Aggregates {
    fn add(&mut self, plan: &Plan, frame: &[u8], time_us: u64, undecodable: bool) {
        if let Some(interval) = plan.histogram_us {
            *self
                .histogram
                .entry(time_us / interval * interval)
                .or_insert(0) += 1;
        }
        let Some((field, _)) = plan.top else { return };
        if undecodable {
            return;
        }
        let v = View::parse(frame);
        let mut add = |key: String| *self.top.entry(key).or_insert(0) += 1;
        match field {
            TopField::Qname => {
                if let Some(q) = v.qname {
                    add(String::from_utf8_lossy(q).to_ascii_lowercase());
                }
            }
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

    fn to_json(&self, plan: &Plan) -> Map<String, Value> {
        let mut out = Map::new();
        if let Some((field, n)) = plan.top {
            let mut rows: Vec<(&String, &u64)> = self.top.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let rows: Vec<Value> = rows
                .into_iter()
                .take(n)
                .map(|(v, c)| json!({"value": v, "count": c}))
                .collect();
            let name = format!("{field:?}").to_ascii_lowercase();
            out.insert("top".into(), json!({ name: rows }));
        }
        if let Some(interval) = plan.histogram_us {
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

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let started = Instant::now();
    let args = Args::from_arg_matches(m)?;
    let plan = plan(&args)?;
    let dir = args.store.resolve()?;
    let mut paths = segment_paths(&dir)
        .with_context(|| format!("cannot list the store in {}", dir.display()))?;
    if plan.reverse {
        paths.reverse();
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if plan.output == Output::Document {
        out.write_all(b"{\"items\":[")?;
    }
    let mut work: Vec<Work> = (0..plan.threads).map(|_| Work::default()).collect();
    let (mut number, mut damaged) = (0u64, 0u64);
    let mut aggregates = Aggregates::default();
    let range = plan.filter.range();
    let mut line = Vec::new();
    'segments: for path in &paths {
        let segment = match Segment::open(path) {
            Ok(s) => s,
            // Removed by a rotate since the store was listed: not an error.
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                damaged += 1;
                eprintln!("dstore grep: {e}");
                continue;
            }
        };
        for d in &segment.damage {
            damaged += 1;
            eprintln!(
                "dstore grep: {}: damaged data at offset {}: {}",
                path.display(),
                d.offset,
                d.what
            );
        }
        let mut blocks: Vec<&BlockRef> = segment
            .blocks
            .iter()
            .filter(|b| range.overlaps(b.header.min_time_us, b.header.max_time_us))
            .collect();
        if plan.reverse {
            blocks.reverse();
        }
        for chunk in blocks.chunks(plan.threads) {
            let outcomes: Vec<Outcome> = if chunk.len() == 1 {
                vec![plan.process(&segment, chunk[0], &mut work[0])]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .zip(work.iter_mut())
                        .map(|(block, w)| {
                            let (plan, segment) = (&plan, &segment);
                            scope.spawn(move || plan.process(segment, block, w))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .zip(chunk)
                        .map(|(h, b)| {
                            h.join().unwrap_or_else(|_| {
                                Outcome::Damaged(
                                    segment.block_error(b.offset, "search panicked".into()),
                                )
                            })
                        })
                        .collect()
                })
            };
            for (outcome, w) in outcomes.into_iter().zip(work.iter()) {
                match outcome {
                    Outcome::Skipped => {}
                    Outcome::Damaged(e) => {
                        damaged += 1;
                        eprintln!("dstore grep: {e}");
                    }
                    Outcome::Counted(n) => number += n,
                    Outcome::Matched(indices) => {
                        let d = &w.decoded;
                        for i in indices {
                            let i = i as usize;
                            if plan.limit.is_some_and(|l| number >= l) {
                                if plan.top.is_none() && plan.histogram_us.is_none() {
                                    break 'segments;
                                }
                                aggregates.add(
                                    &plan,
                                    d.frame(i),
                                    d.times[i],
                                    d.flags[i] & crate::format::codec::FLAG_UNDECODABLE != 0,
                                );
                                continue;
                            }
                            let ev = StoredEvent {
                                frame: d.frame(i),
                                time_us: d.times[i],
                                flags: d.flags[i],
                            };
                            aggregates.add(&plan, ev.frame, ev.time_us, ev.undecodable());
                            print_event(&mut out, plan.output, &ev, number == 0, &mut line)?;
                            number += 1;
                        }
                    }
                }
            }
        }
    }
    if let Some(limit) = plan.limit {
        if plan.output == Output::Count {
            number = number.min(limit);
        }
    }
    let luaresult = aggregates.to_json(&plan);
    match plan.output {
        Output::Document => {
            let msec = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
            writeln!(
                out,
                "],\"luaresult\":{},\"msec\":{},\"number\":{}}}",
                Value::Object(luaresult),
                msec,
                number
            )?;
        }
        Output::Lines if !luaresult.is_empty() => {
            writeln!(out, "{}", json!({ "luaresult": luaresult }))?
        }
        Output::Count if !luaresult.is_empty() => {
            writeln!(out, "{}", json!({"number": number, "luaresult": luaresult}))?
        }
        Output::Count => writeln!(out, "{number}")?,
        Output::Lines | Output::Raw => {}
    }
    out.flush()?;
    if damaged > 0 {
        eprintln!("dstore grep: {damaged} damaged block(s) or segment(s) skipped");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    Ok(if number > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_event(
    out: &mut impl Write,
    output: Output,
    ev: &StoredEvent,
    first: bool,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    let json = || {
        frame_to_json(
            ev.frame,
            &EventMeta {
                time_us: Some(ev.time_us),
                time_from_receive: ev.time_from_receive(),
            },
        )
    };
    match output {
        Output::Raw => write_frame(out, FrameWidth::Two, ev.frame),
        Output::Lines => {
            line.clear();
            serde_json::to_writer(&mut *line, &json())?;
            line.push(b'\n');
            out.write_all(line)
        }
        Output::Document => {
            line.clear();
            if !first {
                line.push(b',');
            }
            serde_json::to_writer(&mut *line, &json())?;
            out.write_all(line)
        }
        Output::Count => Ok(()),
    }
}
