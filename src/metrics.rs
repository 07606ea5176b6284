//! Prometheus metrics over HTTP for the daemons: `GET /metrics` on its own thread, rendered on
//! each request by the daemon's own counters.

use crate::log::Log;
use std::net::SocketAddr;

/// Serves `GET /metrics` (Prometheus text format 0.0.4) on `addr`, answering with `render()`.
pub fn serve(
    addr: SocketAddr,
    render: impl Fn() -> String + Send + 'static,
    log: &Log,
) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    log.info(&format!(
        "metrics on http://{}/metrics",
        server.server_addr()
    ));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let ok = matches!(
                    request.method(),
                    tiny_http::Method::Get | tiny_http::Method::Head
                );
                let response = if ok && request.url() == "/metrics" {
                    tiny_http::Response::from_string(render()).with_header(
                        tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4")
                            .expect("static header"),
                    )
                } else {
                    tiny_http::Response::from_string("not found: the metrics are at /metrics\n")
                        .with_status_code(404)
                };
                let _ = request.respond(response);
            }
        })?;
    Ok(())
}
