//! Load generator for `dstore ingest`: replays a stream of 2-byte length-prefixed frames (as
//! `gen_traffic` writes) over many TCP connections, as fast as it can or paced at a total rate, and
//! says how much it sent. With `--sink` it is the other end instead: a plain socket receiver that
//! reads, counts frames and discards, the upper bound a receiver on this machine can reach.
//!
//! The stream is read into memory before the first connection opens, so the disk plays no part.
//! Each connection owns a contiguous slice of the stream's frames and loops over it; it always
//! writes whole frames in the end (a write the socket took only in part is finished before the
//! connection closes), so a receiver never sees a partial frame from it. Pacing is a token bucket
//! refilled every millisecond and dealt round-robin over the connections; like dnsdist's
//! RemoteLogger, a paced connection buffers its events and writes them when a write's worth
//! (`--write-bytes`) is due or `--flush-ms` has passed since its last write.
//!
//! The last line on stdout is one JSON object with the figures; messages go to stderr. Only
//! loopback addresses are accepted, for sending and for listening.
//!
//! ```text
//! load_gen traffic.pb --target 127.0.0.1:2000 --connections 64 --rate 1000000 --duration 60
//! load_gen --sink --listen 127.0.0.1:2100 --expect-connections 64
//! ```

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};

/// Send a length-prefixed protobuf stream to `dstore ingest` over many connections, or (--sink)
/// receive and discard one.
#[derive(Parser, Debug)]
#[command(name = "load_gen")]
struct Args {
    /// Stream of 2-byte length-prefixed frames to send (gen_traffic's output)
    #[arg(value_name = "FILE", required_unless_present = "sink")]
    file: Option<PathBuf>,
    /// Where to send (loopback only)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2000")]
    target: SocketAddr,
    /// Connections that send
    #[arg(long, value_name = "N", default_value_t = 1)]
    connections: usize,
    /// Total events per second over all connections [default: as fast as possible]
    #[arg(long, value_name = "EVENTS_PER_SEC")]
    rate: Option<f64>,
    /// Send for this many seconds, looping over the stream as needed
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Send this many events in total [default: the stream once, unless --duration]
    #[arg(long, value_name = "N")]
    events: Option<u64>,
    /// Connections opened as well that send nothing and stay open until the end
    #[arg(long, value_name = "N", default_value_t = 0)]
    idle: usize,
    /// Sender threads, each owning a share of the connections [default: min(connections, 4, cpus)]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Most bytes one write carries (whole frames; at least one frame). dnsdist buffers 10,000
    #[arg(long, value_name = "BYTES", default_value_t = 10_000)]
    write_bytes: usize,
    /// Paced: a connection writes what it owes at least this often, even short of --write-bytes
    #[arg(long, value_name = "MS", default_value_t = 100)]
    flush_ms: u64,
    /// Receive instead of sending: read and discard everything on --listen
    #[arg(long)]
    sink: bool,
    /// Sink: where to listen (loopback only; port 0 picks one, printed on stderr)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:2000")]
    listen: SocketAddr,
    /// Sink: finish once this many connections were accepted and all have closed
    #[arg(long, value_name = "N", default_value_t = 1)]
    expect_connections: usize,
}

/// What to send, checked before any file or socket is opened.
struct SendConfig {
    file: PathBuf,
    target: SocketAddr,
    connections: usize,
    idle: usize,
    threads: usize,
    rate: Option<f64>,
    duration: Option<Duration>,
    /// Events in total; `None` with a duration means no limit.
    events: Option<u64>,
    write_bytes: usize,
    flush_every: Duration,
}

struct SinkConfig {
    listen: SocketAddr,
    expect_connections: usize,
}

enum Mode {
    Send(SendConfig),
    Sink(SinkConfig),
}

fn loopback_only(addr: SocketAddr, flag: &str) -> Result<()> {
    if !addr.ip().to_canonical().is_loopback() {
        bail!(
            "{flag} {addr} is not a loopback address: load_gen only loads a daemon on this machine \
             (use 127.0.0.1 or ::1)"
        );
    }
    Ok(())
}

fn config(args: Args) -> Result<Mode> {
    if args.sink {
        loopback_only(args.listen, "--listen")?;
        if args.expect_connections == 0 {
            bail!("--expect-connections must be at least 1");
        }
        return Ok(Mode::Sink(SinkConfig {
            listen: args.listen,
            expect_connections: args.expect_connections,
        }));
    }
    loopback_only(args.target, "--target")?;
    let Some(file) = args.file else {
        bail!("a stream FILE to send is needed (or --sink)");
    };
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of events per second, not {rate}");
        }
    }
    let duration = match args.duration {
        Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
        Some(d) => bail!("--duration must be a positive number of seconds, not {d}"),
        None => None,
    };
    if args.events == Some(0) {
        bail!("--events must be at least 1");
    }
    if args.write_bytes == 0 {
        bail!("--write-bytes must be at least 1");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n.min(args.connections),
        None => args.connections.min(4).min(cpus),
    };
    Ok(Mode::Send(SendConfig {
        file,
        target: args.target,
        connections: args.connections,
        idle: args.idle,
        threads,
        rate: args.rate,
        duration,
        events: args.events,
        write_bytes: args.write_bytes,
        flush_every: Duration::from_millis(args.flush_ms.max(1)),
    }))
}

// ---------------------------------------------------------------------------------------------
// The stream

/// The stream file in memory, with the offset of every frame's length prefix.
struct Stream {
    bytes: Vec<u8>,
    /// `starts[i]` is where frame `i` begins; one more entry holds the end of the last frame.
    starts: Vec<usize>,
}

impl Stream {
    fn read(path: &PathBuf) -> Result<Stream> {
        let mut bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut starts = Vec::with_capacity(bytes.len() / 100 + 1);
        let mut pos = 0;
        while bytes.len() - pos >= 2 {
            let len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
            if len == 0 {
                bail!(
                    "{}: frame {} at offset {pos} has length 0, which ingest rejects",
                    path.display(),
                    starts.len()
                );
            }
            if bytes.len() - pos < 2 + len {
                break;
            }
            starts.push(pos);
            pos += 2 + len;
        }
        if pos < bytes.len() {
            eprintln!(
                "load_gen: {}: the stream ends inside a frame at offset {pos}; sending the {} whole frames before it",
                path.display(),
                starts.len()
            );
            bytes.truncate(pos);
        }
        if starts.is_empty() {
            bail!("{}: no whole frame in the stream", path.display());
        }
        starts.push(pos);
        Ok(Stream { bytes, starts })
    }

    fn frames(&self) -> usize {
        self.starts.len() - 1
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// One sending connection: its slice of the stream, where it is in it, and what it still owes.
struct Conn {
    socket: TcpStream,
    /// The frames this connection loops over.
    slice: Range<usize>,
    next: usize,
    /// Bytes of the current write that the socket has not taken yet.
    pending: Range<usize>,
    pending_events: u64,
    /// Unpaced: events this connection may still start (u64::MAX without --events).
    quota: u64,
    /// Paced: events dealt to this connection and not yet started.
    credit: u64,
    writable: bool,
    last_start: Instant,
}

impl Conn {
    /// Starts the next write: up to `most` whole frames, at most `write_bytes` (but at least one
    /// frame), never wrapping around the end of the slice.
    fn start_write(&mut self, stream: &Stream, most: u64, write_bytes: usize) -> u64 {
        let first = self.next;
        let begin = stream.starts[first];
        let mut end = first + 1;
        while end < self.slice.end
            && ((end - first) as u64) < most
            && stream.starts[end + 1] - begin <= write_bytes
        {
            end += 1;
        }
        self.pending = begin..stream.starts[end];
        self.pending_events = (end - first) as u64;
        self.next = if end == self.slice.end {
            self.slice.start
        } else {
            end
        };
        self.pending_events
    }

    /// Writes until the current write is done or the socket would block. Returns the events and
    /// bytes completed.
    fn write_pending(&mut self, stream: &Stream) -> io::Result<(u64, u64)> {
        let mut bytes = 0u64;
        while !self.pending.is_empty() {
            match self.socket.write(&stream.bytes[self.pending.clone()]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending.start += n;
                    bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok((0, bytes));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((std::mem::take(&mut self.pending_events), bytes))
    }
}

#[derive(Default)]
struct Sent {
    events: u64,
    bytes: u64,
    /// Paced: events dealt but never sent because the deadline came first.
    behind: u64,
    /// Paced: the most events owed and not yet started at once, over this thread's connections.
    max_backlog: u64,
}

struct Pacing {
    /// This thread's share of the total rate.
    rate: f64,
    /// Events this thread may deal in total.
    cap: u64,
}

/// One sender thread: owns `conns` and writes to them until the deadline, the quota or the cap.
fn send_loop(
    mut conns: Vec<Conn>,
    stream: &Stream,
    config: &SendConfig,
    pacing: Option<Pacing>,
    start: Instant,
) -> Result<Sent> {
    let mut poll = Poll::new().context("cannot create a poll")?;
    for (i, c) in conns.iter_mut().enumerate() {
        poll.registry()
            .register(&mut c.socket, Token(i), Interest::WRITABLE)
            .context("cannot watch a connection")?;
    }
    let mut events = Events::with_capacity(1024);
    let deadline = config.duration.map(|d| start + d);
    let write_bytes = config.write_bytes;
    let avg_frame = stream.bytes.len() / stream.frames();
    // A paced connection starts a write once this many events are due (one write's worth).
    let batch = (write_bytes / avg_frame.max(1)).max(1) as u64;
    let (mut issued, mut round_robin, mut trimmed) = (0u64, 0usize, false);
    let mut sent = Sent::default();
    loop {
        let now = Instant::now();
        let past_deadline = deadline.is_some_and(|d| now >= d);
        let mut final_flush = past_deadline;
        if let Some(p) = &pacing {
            if !past_deadline && issued < p.cap {
                let allowed = ((now - start).as_secs_f64() * p.rate) as u64;
                let allowed = allowed.min(p.cap);
                if allowed > issued {
                    let n = conns.len() as u64;
                    let (each, rest) = ((allowed - issued) / n, (allowed - issued) % n);
                    for c in conns.iter_mut() {
                        c.credit += each;
                    }
                    let count = conns.len();
                    for k in 0..rest as usize {
                        conns[(round_robin + k) % count].credit += 1;
                    }
                    round_robin = (round_robin + rest as usize) % count;
                    issued = allowed;
                }
            }
            final_flush |= issued >= p.cap;
            if past_deadline && !trimmed {
                // What a connection owes beyond one write at the deadline is lag, not buffering.
                trimmed = true;
                for c in conns.iter_mut() {
                    let keep = c.credit.min(batch);
                    sent.behind += c.credit - keep;
                    c.credit = keep;
                }
            }
        }
        let mut busy = false;
        let mut backlog = 0;
        for c in conns.iter_mut() {
            loop {
                if c.pending.is_empty() {
                    let most = match &pacing {
                        Some(_) => {
                            let due = c.credit >= batch
                                || (c.credit > 0
                                    && (final_flush || now - c.last_start >= config.flush_every));
                            if !due {
                                break;
                            }
                            c.credit
                        }
                        None => {
                            if c.quota == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                                break;
                            }
                            c.quota
                        }
                    };
                    let started = c.start_write(stream, most, write_bytes);
                    match &pacing {
                        Some(_) => c.credit -= started,
                        None => c.quota -= started,
                    }
                    c.last_start = now;
                }
                if !c.writable {
                    break;
                }
                let (e, b) = c
                    .write_pending(stream)
                    .with_context(|| format!("writing to {}", config.target))?;
                sent.events += e;
                sent.bytes += b;
                if !c.pending.is_empty() {
                    break;
                }
            }
            let more = match &pacing {
                Some(_) => c.credit > 0,
                None => c.quota > 0 && !past_deadline,
            };
            busy |= more || !c.pending.is_empty();
            backlog += c.credit;
        }
        sent.max_backlog = sent.max_backlog.max(backlog);
        let done = match &pacing {
            Some(_) => final_flush && !busy,
            None => !busy,
        };
        if done {
            return Ok(sent);
        }
        let timeout = if pacing.is_some() {
            Duration::from_millis(1)
        } else {
            let waiting = conns.iter().all(|c| !c.writable || c.quota == 0);
            match (waiting, deadline) {
                (false, _) => Duration::ZERO,
                (true, Some(d)) => d
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
                (true, None) => Duration::from_millis(100),
            }
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("poll failed"),
        }
        for event in events.iter() {
            if let Some(c) = conns.get_mut(event.token().0) {
                c.writable = true;
            }
        }
    }
}

fn connect(target: SocketAddr, what: &str, i: usize) -> Result<std::net::TcpStream> {
    std::net::TcpStream::connect_timeout(&target, Duration::from_secs(10)).with_context(|| {
        format!("cannot open {what} connection {i} to {target} (is ingest listening, and `ulimit -n` high enough?)")
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn send(config: SendConfig) -> Result<Value> {
    let stream = Arc::new(Stream::read(&config.file)?);
    let frames = stream.frames();
    let total_events = match (config.events, config.duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(frames as u64),
    };
    let connect_started = Instant::now();
    let mut conns = Vec::with_capacity(config.connections);
    for i in 0..config.connections {
        let socket = connect(config.target, "sending", i)?;
        socket
            .set_nonblocking(true)
            .context("cannot make a socket non-blocking")?;
        // Connection i loops over its own contiguous share of the frames.
        let lo = i * frames / config.connections;
        let hi = ((i + 1) * frames / config.connections).max(lo + 1);
        let quota = match total_events {
            Some(n) => {
                let c = config.connections as u64;
                n / c + u64::from((i as u64) < n % c)
            }
            None => u64::MAX,
        };
        conns.push(Conn {
            socket: TcpStream::from_std(socket),
            slice: lo..hi,
            next: lo,
            pending: 0..0,
            pending_events: 0,
            quota,
            credit: 0,
            writable: true,
            last_start: Instant::now(),
        });
    }
    let idle: Vec<std::net::TcpStream> = (0..config.idle)
        .map(|i| connect(config.target, "idle", i))
        .collect::<Result<_>>()?;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    eprintln!(
        "load_gen: {} frames in memory; {} connections{} to {} in {connect_seconds:.2} s; {} threads",
        frames,
        config.connections,
        if config.idle > 0 {
            format!(" and {} idle", config.idle)
        } else {
            String::new()
        },
        config.target,
        config.threads
    );

    // Deal the connections out to the threads, i % threads.
    let mut shares: Vec<Vec<Conn>> = (0..config.threads).map(|_| Vec::new()).collect();
    for (i, c) in conns.into_iter().enumerate() {
        shares[i % config.threads].push(c);
    }
    let config = Arc::new(config);
    let barrier = Arc::new(Barrier::new(config.threads + 1));
    let mut handles = Vec::new();
    for (t, share) in shares.into_iter().enumerate() {
        let (stream, config, barrier) = (stream.clone(), config.clone(), barrier.clone());
        let pacing = config.rate.map(|rate| {
            let part = share.len() as f64 / config.connections as f64;
            Pacing {
                rate: rate * part,
                cap: share
                    .iter()
                    .map(|c| c.quota)
                    .fold(0u64, u64::saturating_add),
            }
        });
        let handle = std::thread::Builder::new()
            .name(format!("sender-{t}"))
            .spawn(move || {
                barrier.wait();
                let start = Instant::now();
                send_loop(share, &stream, &config, pacing, start)
            })
            .context("cannot start a sender thread")?;
        handles.push(handle);
    }
    barrier.wait();
    let started = Instant::now();
    let started_unix = unix_now();
    let mut total = Sent::default();
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => {
                total.events += s.events;
                total.bytes += s.bytes;
                total.behind += s.behind;
                total.max_backlog += s.max_backlog;
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(anyhow::anyhow!("a sender thread panicked"))),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let finished_unix = unix_now();
    drop(idle);
    if let Some(e) = failure {
        return Err(e);
    }
    let eps = total.events as f64 / seconds.max(1e-9);
    let (requested, ratio, kept_up) = match config.rate {
        Some(rate) => {
            let ratio = eps / rate;
            (json!(rate), json!(round(ratio, 4)), json!(ratio >= 0.98))
        }
        None => (Value::Null, Value::Null, Value::Null),
    };
    let (cpu, rss) = own_usage();
    Ok(json!({
        "mode": "send",
        "target": config.target.to_string(),
        "connections": config.connections,
        "idle": config.idle,
        "threads": config.threads,
        "events": total.events,
        "bytes": total.bytes,
        "seconds": round(seconds, 4),
        "events_per_sec": eps.round(),
        "mb_per_sec": round(total.bytes as f64 / 1e6 / seconds.max(1e-9), 2),
        "requested_rate": requested,
        "achieved_vs_requested": ratio,
        "kept_up": kept_up,
        "behind_events": total.behind,
        "max_backlog_events": total.max_backlog,
        "connect_seconds": round(connect_seconds, 4),
        "started_unix": round(started_unix, 6),
        "finished_unix": round(finished_unix, 6),
        "cpu_seconds": cpu,
        "peak_rss_kib": rss,
    }))
}

// ---------------------------------------------------------------------------------------------
// The sink

/// Where a connection is in its stream: counting frames costs one length read per frame.
#[derive(Default)]
struct SinkConn {
    /// Bytes of the current frame's body still to come.
    need: usize,
    /// The first byte of a length prefix that was split across reads.
    high: Option<u8>,
}

impl SinkConn {
    /// Counts the frames that `data` completes.
    fn consume(&mut self, mut data: &[u8]) -> u64 {
        let mut frames = 0;
        loop {
            if self.need > 0 {
                let k = self.need.min(data.len());
                self.need -= k;
                data = &data[k..];
                if self.need > 0 {
                    return frames;
                }
                frames += 1;
            }
            if data.is_empty() {
                return frames;
            }
            let len = match (self.high.take(), data) {
                (_, []) => return frames,
                (Some(h), [l, rest @ ..]) => {
                    data = rest;
                    usize::from(u16::from_be_bytes([h, *l]))
                }
                (None, [h, l, rest @ ..]) => {
                    data = rest;
                    usize::from(u16::from_be_bytes([*h, *l]))
                }
                (None, [h]) => {
                    self.high = Some(*h);
                    return frames;
                }
            };
            if len == 0 {
                frames += 1;
            }
            self.need = len;
        }
    }

    fn partial(&self) -> bool {
        self.need > 0 || self.high.is_some()
    }
}

fn sink(config: SinkConfig) -> Result<Value> {
    const LISTENER: Token = Token(0);
    let mut listener = TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().unwrap_or(config.listen);
    let mut poll = Poll::new().context("cannot create a poll")?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("load_gen: listening on {bound}");
    let mut conns: Vec<Option<(TcpStream, SinkConn)>> = Vec::new();
    let (mut accepted, mut open, mut frames, mut bytes, mut partial) =
        (0usize, 0usize, 0u64, 0u64, 0u64);
    let (mut first_byte, mut last_byte) = (None, 0.0f64);
    let mut buf = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(1024);
    while accepted < config.expect_connections || open > 0 {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("poll failed"),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut socket, _)) => {
                            let token = Token(conns.len() + 1);
                            poll.registry()
                                .register(&mut socket, token, Interest::READABLE)?;
                            conns.push(Some((socket, SinkConn::default())));
                            accepted += 1;
                            open += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e).context("cannot accept a connection"),
                    }
                }
                continue;
            }
            let Some(slot) = conns.get_mut(event.token().0 - 1) else {
                continue;
            };
            let Some((socket, state)) = slot.as_mut() else {
                continue;
            };
            let mut closed = false;
            let mut got = 0u64;
            loop {
                match socket.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        got += n as u64;
                        frames += state.consume(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if got > 0 {
                bytes += got;
                last_byte = unix_now();
                first_byte.get_or_insert(last_byte);
            }
            if closed {
                if state.partial() {
                    partial += 1;
                }
                if let Some((mut socket, _)) = slot.take() {
                    let _ = poll.registry().deregister(&mut socket);
                }
                open -= 1;
            }
        }
    }
    let first_byte = first_byte.unwrap_or(last_byte);
    let seconds = last_byte - first_byte;
    let (cpu, rss) = own_usage();
    Ok(json!({
        "mode": "sink",
        "listen": bound.to_string(),
        "connections": accepted,
        "events": frames,
        "bytes": bytes,
        "seconds": round(seconds, 4),
        "events_per_sec": (frames as f64 / seconds.max(1e-9)).round(),
        "mb_per_sec": round(bytes as f64 / 1e6 / seconds.max(1e-9), 2),
        "partial_frames": partial,
        "kept_up": Value::Null,
        "first_byte_unix": round(first_byte, 6),
        "last_byte_unix": round(last_byte, 6),
        "cpu_seconds": cpu,
        "peak_rss_kib": rss,
    }))
}

// ---------------------------------------------------------------------------------------------

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

/// This process's CPU seconds (user + system) and peak RSS in KiB, from /proc/self, so that the
/// benchmark needs no outside timer for a process that exits by itself.
fn own_usage() -> (Value, Value) {
    // /proc counts CPU time in USER_HZ ticks, 100 per second on every architecture this runs on.
    const TICKS_PER_SEC: f64 = 100.0;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after_name = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some(round((utime + stime) / TICKS_PER_SEC, 2))
        })
        .map_or(Value::Null, |c| json!(c));
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(Value::Null, |r| json!(r));
    (cpu, rss)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = config(args).and_then(|mode| match mode {
        Mode::Send(c) => send(c),
        Mode::Sink(c) => sink(c),
    });
    match result {
        Ok(figures) => {
            println!("{figures}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load_gen: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SinkConn;

    #[test]
    fn sink_counts_frames_split_anywhere() {
        let mut stream = Vec::new();
        for len in [1usize, 300, 2, 70_000 % 65_536, 5] {
            stream.extend_from_slice(&(len as u16).to_be_bytes());
            stream.extend(std::iter::repeat_n(7u8, len));
        }
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len().min(cut + 4) {
                let mut c = SinkConn::default();
                let n = c.consume(&stream[..cut])
                    + c.consume(&stream[cut..cut2])
                    + c.consume(&stream[cut2..]);
                assert_eq!(n, 5, "cut at {cut}, {cut2}");
                assert!(!c.partial());
            }
        }
    }
}
