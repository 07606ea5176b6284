//! Just enough HTTP/1.1 to talk to ClickHouse's HTTP interface, plain or over TLS (rustls; the
//! server's certificate checked against Mozilla's roots or the CA file given): one request per
//! connection (`Connection: close`; a batch is large enough that a new connection costs nothing next
//! to it), Basic authentication, bounded time and size everywhere, and inserts in ClickHouse's own
//! compressed format (`decompress=1`): LZ4 blocks, each behind a CityHash128 (version 1.0.2)
//! checksum, a method byte and two sizes.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where ClickHouse listens and who we are there.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
    /// https: TLS, checking the server's certificate.
    pub tls: bool,
    /// PEM file of the CAs to trust instead of Mozilla's roots (a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Endpoint {
    /// `http://HOST[:PORT][/]` (port 8123 by default) or `https://HOST[:PORT]` (8443); an IPv6
    /// host in brackets.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = match url.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => return Err(format!("`{url}` is not an http:// or https:// URL")),
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '@', '#']) {
            return Err(format!(
                "`{url}`: give only http://HOST:PORT (user and password have their own options)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: unclosed ["))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| format!("`{url}`: `{p}` is not a port"))?,
            None if tls => 8443,
            None => 8123,
        };
        Ok(Endpoint {
            host,
            port,
            user: None,
            password: None,
            timeout: Duration::from_secs(60),
            tls,
            ca_file: None,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", host_header(&self.host), self.port)
    }
}

/// Why a request failed: the server could not be reached or talked to, or it answered with an
/// error (its status and the first part of its message).
#[derive(Debug)]
pub enum HttpError {
    Io(std::io::Error),
    Status(u16, String),
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Status(code, body) => write!(f, "HTTP {code}: {body}"),
            HttpError::Protocol(what) => write!(f, "bad HTTP answer: {what}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::Io(e)
    }
}

/// What we keep of an answer body; ClickHouse's answers to inserts and small queries are short.
const MAX_BODY: usize = 1 << 20;
const MAX_HEADER_LINE: usize = 8 << 10;
/// Uncompressed bytes per compressed block, as ClickHouse's own max_compress_block_size.
const COMPRESS_BLOCK: usize = 1 << 20;
const METHOD_LZ4: u8 = 0x82;

pub struct Client {
    endpoint: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    pub compress: bool,
    pub sent_bytes: u64,
}

/// The TLS settings of an https endpoint: Mozilla's roots, or only the CAs of `ca_file`.
fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Client {
    /// A client for `endpoint`; for https, its TLS settings (an unreadable CA file is an error).
    pub fn new(endpoint: Endpoint) -> Result<Client, String> {
        let tls = match endpoint.tls {
            true => Some(Arc::new(tls_config(endpoint.ca_file.as_ref())?)),
            false => None,
        };
        Ok(Client {
            endpoint,
            tls,
            compress: true,
            sent_bytes: 0,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Runs a statement (the body) and returns the answer as text.
    pub fn query(&mut self, sql: &str) -> Result<String, HttpError> {
        self.post("/", sql.as_bytes())
    }

    /// `insert` (an INSERT ... FORMAT RowBinary statement) with `rows` as its data.
    pub fn insert(&mut self, insert: &str, rows: &[u8]) -> Result<(), HttpError> {
        let mut target = format!("/?query={}", percent_encode(insert));
        if self.compress {
            target.push_str("&decompress=1");
            let body = compress(rows);
            self.post(&target, &body)?;
        } else {
            self.post(&target, rows)?;
        }
        Ok(())
    }

    fn post(&mut self, target: &str, body: &[u8]) -> Result<String, HttpError> {
        let e = &self.endpoint;
        let addrs: Vec<_> = (e.host.as_str(), e.port).to_socket_addrs()?.collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, e.timeout.min(Duration::from_secs(10))) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last = Some(err),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(err)) => return Err(err.into()),
            (None, None) => return Err(HttpError::Protocol(format!("{} has no address", e.host))),
        };
        stream.set_read_timeout(Some(e.timeout))?;
        stream.set_write_timeout(Some(e.timeout))?;
        let _ = stream.set_nodelay(true);
        let mut head = format!(
            "POST {target} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
            host_header(&e.host),
            e.port,
            body.len()
        );
        if let Some(user) = &e.user {
            let credentials = format!("{user}:{}", e.password.as_deref().unwrap_or(""));
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(credentials.as_bytes())
            ));
        }
        head.push_str("\r\n");
        self.sent_bytes += (head.len() + body.len()) as u64;
        match &self.tls {
            None => exchange(stream, &head, body),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(e.host.clone())
                    .map_err(|_| HttpError::Protocol(format!("`{}` is not a host name", e.host)))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|err| HttpError::Protocol(format!("TLS: {err}")))?;
                exchange(rustls::StreamOwned::new(conn, stream), &head, body)
            }
        }
    }
}

/// Writes one request and reads its answer.
fn exchange(mut stream: impl Read + Write, head: &str, body: &[u8]) -> Result<String, HttpError> {
    {
        let mut writer = std::io::BufWriter::with_capacity(64 << 10, &mut stream);
        writer.write_all(head.as_bytes())?;
        writer.write_all(body)?;
        writer.flush()?;
    }
    read_response(BufReader::new(stream))
}

fn host_header(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String, HttpError> {
    let mut line = Vec::new();
    r.by_ref()
        .take(MAX_HEADER_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(HttpError::Protocol(
            "a line of the answer is cut off or too long".into(),
        ));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

fn read_response(mut r: impl BufRead) -> Result<String, HttpError> {
    let status_line = read_line(&mut r)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Protocol(format!("status line `{status_line}`")))?;
    let (mut length, mut chunked) = (None, false);
    for _ in 0..100 {
        let line = read_line(&mut r)?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = read_line(&mut r)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| HttpError::Protocol(format!("chunk size `{size}`")))?;
            if size == 0 || size > MAX_BODY - body.len() {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(&mut r)?;
        }
    } else {
        let limit = length.unwrap_or(MAX_BODY).min(MAX_BODY);
        r.take(limit as u64).read_to_end(&mut body)?;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    if status == 200 {
        Ok(text)
    } else {
        let first: String = text.trim().chars().take(500).collect();
        Err(HttpError::Status(status, first))
    }
}

/// ClickHouse's compressed framing of `data`, as `decompress=1` takes it.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    for chunk in data.chunks(COMPRESS_BLOCK) {
        let start = out.len();
        out.extend_from_slice(&[0; 16]);
        out.push(METHOD_LZ4);
        out.extend_from_slice(&[0; 8]);
        let compressed = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&compressed);
        let block_len = (9 + compressed.len()) as u32;
        out[start + 17..start + 21].copy_from_slice(&block_len.to_le_bytes());
        out[start + 21..start + 25].copy_from_slice(&(chunk.len() as u32).to_le_bytes());
        let hash = cityhash_rs::cityhash_102_128(&out[start + 16..]);
        // ClickHouse lays the 128-bit checksum out as its high 64 bits, then its low 64 bits.
        out[start..start + 8].copy_from_slice(&((hash >> 64) as u64).to_le_bytes());
        out[start + 8..start + 16].copy_from_slice(&(hash as u64).to_le_bytes());
    }
    out
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:18123/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 18123));
        let e = Endpoint::parse("http://[::1]").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 8123));
        assert_eq!(e.to_string(), "http://[::1]:8123");
        let e = Endpoint::parse("https://ch.example").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("ch.example", 8443, true));
        for bad in [
            "127.0.0.1:8123",
            "http://",
            "http://h:port",
            "http://u:p@h:1",
            "http://h/db",
            "ftp://h",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_and_percent() {
        assert_eq!(base64(b"default:"), "ZGVmYXVsdDo=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(
            percent_encode("INSERT INTO t (a, b)"),
            "INSERT%20INTO%20t%20%28a%2C%20b%29"
        );
    }

    #[test]
    fn answers_plain_chunked_and_failed() {
        let plain = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n18.16.1";
        assert_eq!(read_response(plain.as_bytes()).unwrap(), "18.16.1");
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(read_response(chunked.as_bytes()).unwrap(), "abcde");
        let failed = "HTTP/1.0 500 Internal Server Error\r\n\r\nCode: 60, e.displayText() = DB::Exception: Table default.x doesn't exist.\n";
        match read_response(failed.as_bytes()) {
            Err(HttpError::Status(500, text)) => assert!(text.starts_with("Code: 60")),
            other => panic!("{other:?}"),
        }
        assert!(read_response("garbage".as_bytes()).is_err());
    }

    #[test]
    fn compressed_blocks_carry_their_sizes() {
        let data: Vec<u8> = (0..(COMPRESS_BLOCK + 10)).map(|i| (i % 7) as u8).collect();
        let out = compress(&data);
        let block_len = u32::from_le_bytes(out[17..21].try_into().unwrap()) as usize;
        assert_eq!(out[16], METHOD_LZ4);
        assert_eq!(
            u32::from_le_bytes(out[21..25].try_into().unwrap()) as usize,
            COMPRESS_BLOCK
        );
        let first = &out[25..16 + block_len];
        assert_eq!(
            lz4_flex::block::decompress(first, COMPRESS_BLOCK).unwrap(),
            data[..COMPRESS_BLOCK]
        );
        let second = &out[16 + block_len..];
        assert_eq!(u32::from_le_bytes(second[21..25].try_into().unwrap()), 10);
    }
}
