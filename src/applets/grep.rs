//! `dstore grep` (1.x `dgrep`): finds events by time, name, type, code, address, answer, id, policy
//! and more, and prints the 1.x JSON document, JSON lines, raw frames, a count, top-N tables or a
//! histogram. Blocks outside the time range are never read; blocks whose summary rules the search
//! out are never opened; blocks are decoded on several threads.

use crate::config::StoreArgs;
use crate::event_json::{frame_to_json, EventMeta};
use crate::filter::Filter;
use crate::format::store::now_us;
use crate::format::StoredEvent;
use crate::frame::{write_frame, FrameWidth};
use crate::search::{self, filter_from_pairs, Query, TopField};
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use serde_json::{json, Value};
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
    #[command(flatten)]
    conditions: Conditions,
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

/// The conditions that select events, for every applet that selects them (grep, export).
#[derive(clap::Args, Debug)]
pub struct Conditions {
    /// Events at or after this time (unix seconds, RFC 3339, now, -15m, -2h, -7d)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Events before this time
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Events of the last DURATION (1h, 30m, 7d)
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub last: Option<String>,
    /// Exactly this query name (any case, trailing dot optional)
    #[arg(long, value_name = "NAME")]
    pub qname: Vec<String>,
    /// This name and every name under it
    #[arg(long, value_name = "NAME")]
    pub domain: Vec<String>,
    /// Query names matching this regular expression (case-insensitive)
    #[arg(long, value_name = "RE")]
    pub qname_regex: Option<String>,
    /// Query names matching this glob (`*`, `?`)
    #[arg(long, value_name = "GLOB", conflicts_with = "qname_regex")]
    pub qname_glob: Option<String>,
    /// Query type: A, AAAA, MX, ... or a number
    #[arg(long, value_name = "QTYPE")]
    pub qtype: Vec<String>,
    /// Response code: NOERROR, NXDOMAIN, SERVFAIL, ... or a number; `!` negates
    #[arg(long, value_name = "RCODE", allow_hyphen_values = true)]
    pub rcode: Vec<String>,
    /// Message type: query, response, outgoing-query, incoming-response
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Vec<String>,
    /// Client address or range
    #[arg(long, value_name = "CIDR")]
    pub requestor: Vec<String>,
    /// Server address or range
    #[arg(long, value_name = "CIDR")]
    pub responder: Vec<String>,
    /// An address or range in the A/AAAA answers, or a name in any answer record
    #[arg(long, value_name = "IP|CIDR|NAME")]
    pub answer: Vec<String>,
    /// EDNS client subnet address or range
    #[arg(long, value_name = "CIDR")]
    pub ecs: Vec<String>,
    /// Message id (a query and its response share it)
    #[arg(long, value_name = "UUID")]
    pub id: Vec<String>,
    /// Applied policy (1.x preason), any case
    #[arg(long, value_name = "TEXT")]
    pub policy: Vec<String>,
    /// Policy tag
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    pub server_identity: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    pub requestor_id: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    pub device_id: Vec<String>,
    #[arg(long, value_name = "TEXT")]
    pub device_name: Vec<String>,
    /// udp, tcp, dot, doh, doq, dnscrypt-udp, dnscrypt-tcp
    #[arg(long, value_name = "PROTO")]
    pub protocol: Vec<String>,
}

impl Conditions {
    /// The conditions as named pairs, as `filter_from_pairs` takes them.
    fn pairs<'a>(&'a self) -> Vec<(&'static str, &'a str)> {
        let mut pairs: Vec<(&'static str, &'a str)> = Vec::new();
        let mut add = |key: &'static str, values: &'a [String]| {
            pairs.extend(values.iter().map(|v| (key, v.as_str())))
        };
        add("from", self.from.as_slice());
        add("to", self.to.as_slice());
        add("last", self.last.as_slice());
        add("qname", &self.qname);
        add("domain", &self.domain);
        add("qname-regex", self.qname_regex.as_slice());
        add("qname-glob", self.qname_glob.as_slice());
        add("qtype", &self.qtype);
        add("rcode", &self.rcode);
        add("type", &self.kind);
        add("requestor", &self.requestor);
        add("responder", &self.responder);
        add("answer", &self.answer);
        add("ecs", &self.ecs);
        add("id", &self.id);
        add("policy", &self.policy);
        add("tag", &self.tag);
        add("server-identity", &self.server_identity);
        add("requestor-id", &self.requestor_id);
        add("device-id", &self.device_id);
        add("device-name", &self.device_name);
        add("protocol", &self.protocol);
        pairs
    }

    /// The filter these conditions and the 1.x search words `terms` (space separated) make;
    /// errors name the option or the word.
    pub fn filter(&self, terms: &str) -> Result<Filter> {
        let mut pairs = self.pairs();
        pairs.push(("q", terms));
        filter_from_pairs(pairs, now_us()).map_err(|e| match e.strip_prefix("q: ") {
            Some(word) => anyhow::anyhow!("{word}"),
            None => anyhow::anyhow!("--{e}"),
        })
    }
}

pub fn command() -> Command {
    Args::command()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Document,
    Lines,
    Raw,
    Count,
}

/// The search the arguments ask for, checked before any I/O.
fn query(args: &Args) -> Result<(Query, Output)> {
    let filter = args.conditions.filter(&args.terms.join(" "))?;
    let mut q = Query::new(filter);
    q.limit = args.limit;
    q.newest_first = args.reverse;
    if let Some(threads) = args.threads {
        q.threads = threads.max(1);
    }
    match args.top.as_slice() {
        [] => {}
        [field, n] => {
            let field = TopField::parse(field).map_err(|e| anyhow::anyhow!("--top: {e}"))?;
            let n: usize = n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .with_context(|| format!("--top: `{n}` is not a positive number"))?;
            q.top.push((field, n));
        }
        _ => bail!("--top takes a field and a number"),
    }
    if let Some(h) = &args.histogram {
        q.histogram_us =
            Some(search::parse_interval(h).map_err(|e| anyhow::anyhow!("--histogram: {e}"))?);
    }
    let output = if args.count {
        Output::Count
    } else if args.raw {
        Output::Raw
    } else if args.ndjson {
        Output::Lines
    } else {
        Output::Document
    };
    q.events = output != Output::Count;
    Ok((q, output))
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let started = Instant::now();
    let args = Args::from_arg_matches(m)?;
    let (q, output) = query(&args)?;
    let dir = args.store.resolve()?;
    // A store that cannot be listed is an error before anything is printed.
    crate::format::segment_paths(&dir).context("cannot list the store")?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if output == Output::Document {
        out.write_all(b"{\"items\":[")?;
    }
    let mut line = Vec::new();
    let mut first = true;
    let totals = search::run(&dir, &q, &mut |ev| {
        let r = print_event(&mut out, output, ev, first, &mut line);
        first = false;
        r
    })
    .with_context(|| format!("searching {}", dir.display()))?;
    let luaresult = totals.aggregates.to_json(&q);
    let number = if q.events {
        totals.handed
    } else {
        totals.number
    };
    let tail = || -> std::io::Result<()> {
        match output {
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
        out.flush()
    };
    tail().context(super::CANNOT_WRITE)?;
    for d in &totals.damage {
        eprintln!("dstore grep: {d}");
    }
    if !totals.damage.is_empty() {
        eprintln!(
            "dstore grep: {} damaged block(s) or segment(s) skipped",
            totals.damage.len()
        );
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
