//! The event loop: a `Server` owns the listeners and a token-to-connection map; a `Conn` owns its
//! socket and read buffer, splits what arrives into frames and hands them to the batch bound for the
//! store writer. The loop never writes to a producer and never waits on the disk: when the writer
//! falls behind and the queue reaches its bound, the loop goes on reading and drops (and counts).

use super::sink::Batch;
use super::stats::Stats;
use super::IngestConfig;
use crate::format::store::now_us;
use crate::frame::FrameWidth;
use crate::log::Log;
use crate::net::Cidr;
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

const SIGNALS: Token = Token(0);
const FIRST_LISTENER: usize = 1;
/// What a connection's buffer starts at: small, since a thousand producers each sending a
/// thousand events a second fill a few KiB per read. It grows to the longest frame allowed while a
/// long frame arrives, and to `BUSY_BUFFER` for a connection whose reads fill it, as long as all
/// connections at that size would fit in `BUSY_BUDGET` (a thousand busy producers get 8 KiB each).
const INITIAL_BUFFER: usize = 4 * 1024;
const BUSY_BUFFER: usize = 64 * 1024;
const BUSY_BUDGET: usize = 8 << 20;
/// Pending connections the kernel queues: producers reconnect all at once after a restart.
const BACKLOG: i32 = 4096;
/// A batch goes to the writer at the end of each loop turn, or sooner once this large.
const BATCH_BYTES: usize = 1 << 20;

/// What a signal asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Stop,
    Reload,
}

struct Listener {
    socket: TcpListener,
    width: FrameWidth,
}

struct Conn {
    socket: TcpStream,
    peer: IpAddr,
    width: FrameWidth,
    buf: Vec<u8>,
    len: usize,
    /// Whether the first bytes were looked at (to turn away HTTP, TLS and SSH).
    sniffed: bool,
}

/// Why a connection ends.
enum End {
    Open,
    Closed,
    Foreign(&'static str),
    BadLength(usize),
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Listener>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    signals: UnixStream,
    allow: Vec<Cidr>,
    config: IngestConfig,
    stats: Arc<Stats>,
    log: Arc<Log>,
    batch: Batch,
    queue: Sender<Batch>,
    paused: bool,
}

impl Server {
    /// Binds every listener (an error names the address) and registers the signal pipe.
    pub fn bind(
        config: IngestConfig,
        mut signals: UnixStream,
        stats: Arc<Stats>,
        log: Arc<Log>,
        queue: Sender<Batch>,
    ) -> io::Result<Server> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut listeners = Vec::new();
        for (i, &(addr, width)) in config.listen.iter().enumerate() {
            let mut socket = listen(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            poll.registry()
                .register(&mut socket, Token(FIRST_LISTENER + i), Interest::READABLE)?;
            let shown = socket.local_addr().unwrap_or(addr);
            let framing = if width == FrameWidth::Four {
                " (4-byte frames)"
            } else {
                ""
            };
            log.info(&format!("listening on {shown}{framing}"));
            listeners.push(Listener { socket, width });
        }
        let next_token = FIRST_LISTENER + listeners.len();
        Ok(Server {
            poll,
            listeners,
            conns: HashMap::new(),
            next_token,
            signals,
            allow: config.allow_from.clone(),
            config,
            stats,
            log,
            batch: Batch::default(),
            queue,
            paused: false,
        })
    }

    /// The addresses actually bound (port 0 becomes the port the system chose).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.socket.local_addr().ok())
            .collect()
    }

    /// Runs until SIGTERM or SIGINT; then reads what the producers already sent and returns.
    pub fn run(mut self, mut on_reload: impl FnMut() -> Option<Vec<Cidr>>) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let status_every = self.config.status_interval;
        let mut next_status = status_every.map(|d| Instant::now() + d);
        let mut last_counts = (0, 0);
        let mut last_status = Instant::now();
        loop {
            let timeout = next_status.map(|t| t.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut stop = false;
            for event in events.iter() {
                match event.token() {
                    SIGNALS => match self.read_signals() {
                        Some(Signal::Stop) => stop = true,
                        Some(Signal::Reload) => {
                            if let Some(allow) = on_reload() {
                                self.allow = allow;
                                self.close_disallowed();
                            }
                        }
                        None => {}
                    },
                    Token(t) if t < FIRST_LISTENER + self.listeners.len() => {
                        self.accept(t - FIRST_LISTENER)
                    }
                    token => self.ready(token),
                }
            }
            self.send_batch();
            if let (Some(every), Some(at)) = (status_every, next_status) {
                if Instant::now() >= at {
                    let (line, counts) = self
                        .stats
                        .status_line(last_counts, last_status.elapsed().as_secs_f64());
                    self.log.info(&line);
                    last_counts = counts;
                    last_status = Instant::now();
                    next_status = Some(Instant::now() + every);
                }
            }
            if stop {
                self.shutdown();
                return Ok(());
            }
        }
    }

    fn read_signals(&mut self) -> Option<Signal> {
        let mut buf = [0u8; 64];
        let mut seen = None;
        loop {
            match self.signals.read(&mut buf) {
                Ok(0) => return seen,
                Ok(n) => {
                    for &b in &buf[..n] {
                        let s = if b == b'H' {
                            Signal::Reload
                        } else {
                            Signal::Stop
                        };
                        if seen != Some(Signal::Stop) {
                            seen = Some(s);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return seen,
            }
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            if self.conns.len() >= self.config.max_connections {
                if !self.paused {
                    self.paused = true;
                    self.stats.connection_cap_reached.fetch_add(1, Relaxed);
                    self.log.limited("cap", || {
                        format!("{} connections open, the most allowed: not accepting more until one closes", self.conns.len())
                    });
                }
                return;
            }
            let listener = &self.listeners[index];
            let (mut socket, peer) = match listener.socket.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: say so and try again on the next event.
                    self.log
                        .limited("accept", || format!("cannot accept a connection: {e}"));
                    return;
                }
            };
            let ip = peer.ip().to_canonical();
            if !self.allow.iter().any(|c| c.contains(ip)) {
                self.stats.refused_connections.fetch_add(1, Relaxed);
                self.log.limited("refused", || {
                    format!("refused a connection from {ip}: not in allow-from")
                });
                continue;
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut socket, token, Interest::READABLE)
            {
                self.log.limited("register", || {
                    format!("cannot watch the connection from {peer}: {e}")
                });
                continue;
            }
            self.stats.accepted_connections.fetch_add(1, Relaxed);
            self.stats.open_connections.fetch_add(1, Relaxed);
            self.stats.producer(ip, |p| p.connections += 1);
            let width = listener.width;
            self.conns.insert(
                token,
                Conn {
                    socket,
                    peer: ip,
                    width,
                    buf: vec![0; INITIAL_BUFFER],
                    len: 0,
                    sniffed: false,
                },
            );
        }
    }

    /// Reads everything a connection has for us, until it would block or ends.
    fn ready(&mut self, token: Token) {
        let busy_buffer =
            (BUSY_BUDGET / self.conns.len().max(1)).clamp(INITIAL_BUFFER, BUSY_BUFFER);
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let max_frame = self.config.max_frame;
        let now = now_us();
        let (mut events, mut bytes) = (0u64, 0u64);
        let mut end = End::Open;
        loop {
            if conn.len == conn.buf.len() {
                // Full: only possible while a long frame is arriving; grow toward it.
                let cap = conn.width.prefix_len() + max_frame;
                if conn.buf.len() >= cap {
                    end = End::BadLength(conn.len);
                    break;
                }
                conn.buf.resize((conn.buf.len() * 2).min(cap), 0);
            }
            match conn.socket.read(&mut conn.buf[conn.len..]) {
                Ok(0) => {
                    end = End::Closed;
                    break;
                }
                Ok(n) => {
                    let filled = conn.len + n == conn.buf.len();
                    conn.len += n;
                    if !conn.sniffed && conn.len >= 4 {
                        conn.sniffed = true;
                        if let Some(what) = foreign_protocol(&conn.buf[..4]) {
                            end = End::Foreign(what);
                            break;
                        }
                    }
                    // While the queue is at its bound, what arrives is dropped as it is split,
                    // without copying it to a batch that would be dropped whole.
                    let pending = self.batch.frames.len() + n;
                    let full = queue_full(&self.stats, pending, self.config.queue_bytes);
                    let (e, b, bad) = split_frames(
                        conn,
                        max_frame,
                        full.is_none().then_some(&mut self.batch),
                        now,
                        self.config.answer_limit,
                    );
                    events += e;
                    bytes += b;
                    if let Some(queued) = full.filter(|_| e > 0) {
                        count_dropped(&self.stats, &self.log, e, queued);
                    }
                    if let Some(len) = bad {
                        end = End::BadLength(len);
                        break;
                    }
                    // A busy producer: fewer, larger reads.
                    if filled && conn.buf.len() < busy_buffer {
                        conn.buf.resize(conn.buf.len() * 2, 0);
                    }
                    if self.batch.frames.len() >= BATCH_BYTES {
                        // The next batch starts at its full size: growing a megabyte by doubling
                        // copied each batch about once more.
                        let full = Batch::with_capacity(BATCH_BYTES + 64 * 1024);
                        let batch = std::mem::replace(&mut self.batch, full);
                        send(
                            batch,
                            &self.stats,
                            &self.queue,
                            self.config.queue_bytes,
                            &self.log,
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    end = End::Closed;
                    break;
                }
            }
        }
        // A buffer that grew while there were fewer connections (or for a long frame) goes back
        // within the budget once what it holds fits.
        if conn.buf.len() > busy_buffer && conn.len <= busy_buffer {
            conn.buf.truncate(busy_buffer);
            conn.buf.shrink_to_fit();
        }
        let Some(conn) = self.conns.get(&token) else {
            return;
        };
        let peer = conn.peer;
        self.stats.events.fetch_add(events, Relaxed);
        self.stats.bytes.fetch_add(bytes, Relaxed);
        if events > 0 {
            self.stats.producer(peer, |p| {
                p.events += events;
                p.bytes += bytes;
            });
        }
        match end {
            End::Open => return,
            End::Closed => {
                if conn.len > 0 {
                    self.stats.partial_frames.fetch_add(1, Relaxed);
                    let n = conn.len;
                    self.log.limited("partial", || {
                        format!("{peer} closed its connection inside a frame: {n} bytes dropped")
                    });
                }
            }
            End::Foreign(what) => {
                self.stats.foreign_streams.fetch_add(1, Relaxed);
                self.log.limited("foreign", || {
                    format!(
                        "closed a connection from {peer} that speaks {what}, not a protobuf stream"
                    )
                });
            }
            End::BadLength(len) => {
                self.stats.bad_lengths.fetch_add(1, Relaxed);
                self.log.limited("length", || {
                    format!("closed the connection from {peer}: a frame length of {len} bytes is zero or over the limit of {max_frame}")
                });
            }
        }
        self.close(token);
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.socket);
            self.stats.open_connections.fetch_sub(1, Relaxed);
        }
        if self.paused && self.conns.len() < self.config.max_connections {
            self.paused = false;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    fn close_disallowed(&mut self) {
        let gone: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| !self.allow.iter().any(|a| a.contains(c.peer)))
            .map(|(t, _)| *t)
            .collect();
        for token in gone {
            self.stats.refused_connections.fetch_add(1, Relaxed);
            self.close(token);
        }
    }

    fn send_batch(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            send(
                batch,
                &self.stats,
                &self.queue,
                self.config.queue_bytes,
                &self.log,
            );
        }
    }

    /// Stops accepting, reads what every connection already sent, and sends the last batch.
    fn shutdown(mut self) {
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.socket);
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            self.ready(token);
            if let Some(conn) = self.conns.get(&token) {
                if conn.len > 0 {
                    self.stats.partial_frames.fetch_add(1, Relaxed);
                }
            }
            self.close(token);
        }
        self.send_batch();
        let s = &self.stats;
        self.log.info(&format!(
            "stopping: {} events received, {} dropped, {} partial frames",
            s.events.load(Relaxed),
            s.dropped.load(Relaxed),
            s.partial_frames.load(Relaxed)
        ));
    }
}

/// A listening socket with a deep backlog; `[::]` takes IPv4 too.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// The bytes queued, when `bytes` more would pass the queue's bound. An empty queue takes any
/// batch, however large: only a writer that is behind drops.
fn queue_full(stats: &Stats, bytes: usize, limit: usize) -> Option<u64> {
    let queued = stats.queued_bytes.load(Relaxed);
    (queued > 0 && queued + bytes as u64 > limit as u64).then_some(queued)
}

fn count_dropped(stats: &Stats, log: &Log, n: u64, queued: u64) {
    stats.dropped.fetch_add(n, Relaxed);
    log.limited("dropped", || {
        format!("the store writer is behind ({queued} bytes queued): dropped {n} events")
    });
}

/// Hands a batch to the writer, unless the queue is at its bound: then the batch is dropped, and
/// counted.
fn send(batch: Batch, stats: &Stats, queue: &Sender<Batch>, limit: usize, log: &Log) {
    let bytes = batch.frames.len() as u64;
    if let Some(queued) = queue_full(stats, batch.frames.len(), limit) {
        count_dropped(stats, log, batch.len() as u64, queued);
        return;
    }
    stats.queued_bytes.fetch_add(bytes, Relaxed);
    if let Err(lost) = queue.send(batch) {
        stats.queued_bytes.fetch_sub(bytes, Relaxed);
        stats.dropped.fetch_add(lost.0.len() as u64, Relaxed);
    }
}

/// Recognises streams that are not PowerDNS protobuf from their first four bytes.
fn foreign_protocol(head: &[u8]) -> Option<&'static str> {
    const HTTP: [&[u8]; 8] = [
        b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"CONN", b"PRI ",
    ];
    if HTTP.iter().any(|m| head.starts_with(m)) {
        Some("HTTP")
    } else if head.starts_with(&[0x16, 0x03]) {
        Some("TLS")
    } else if head.starts_with(b"SSH-") {
        Some("SSH")
    } else {
        None
    }
}

/// Moves the whole frames in `conn`'s buffer to the batch (or drops them, without a batch). Returns
/// the events and bytes taken, and the offending length of a frame that is empty or too long, which
/// ends the connection.
fn split_frames(
    conn: &mut Conn,
    max_frame: usize,
    mut batch: Option<&mut Batch>,
    now: u64,
    answer_limit: Option<usize>,
) -> (u64, u64, Option<usize>) {
    let prefix = conn.width.prefix_len();
    let (mut pos, mut events, mut bytes) = (0, 0u64, 0u64);
    let mut scratch = Vec::new();
    while conn.len - pos >= prefix {
        let len = conn.buf[pos..pos + prefix]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        if len == 0 || len > max_frame {
            return (events, bytes, Some(len));
        }
        if conn.len - pos < prefix + len {
            break;
        }
        let frame = &conn.buf[pos + prefix..pos + prefix + len];
        match (&mut batch, answer_limit) {
            (None, _) => {}
            (Some(batch), Some(limit)) if super::limit_answers(frame, limit, &mut scratch) => {
                batch.push(&scratch, now)
            }
            (Some(batch), _) => batch.push(frame, now),
        }
        pos += prefix + len;
        events += 1;
        bytes += (prefix + len) as u64;
    }
    conn.buf.copy_within(pos..conn.len, 0);
    conn.len -= pos;
    (events, bytes, None)
}
