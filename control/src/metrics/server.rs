//! The metrics endpoint: `GET /metrics` answers the page, any other path 404, any other method
//! on it 405. Served with hyper (HTTP/1.1) on a tokio runtime — control's own in cluster mode, a
//! current-thread runtime on a thread of its own in manifest mode.
//!
//! Every connection is a task of its own, so a slow client delays nobody else; and none is
//! held for long: the request's head must arrive within [`Limits::header_read`], and the whole
//! exchange — reading the request, writing the page — must end within [`Limits::connection`],
//! after which the connection is dropped (hyper has no write timeout of its own: this bound is
//! it, and why connections are not kept alive — one request each, so the bound never cuts a
//! second scrape short).
//!
//! Known limit: in cluster mode the runtime also runs the control loop, whose compiles do not
//! yield; a scrape that arrives during one is answered after it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{debug, warn};

use super::Metrics;

/// How long a connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the connection's start to the end of the request's head.
    pub header_read: Duration,
    /// From the connection's start to the end of the response: a client that stops reading is
    /// cut off then.
    pub connection: Duration,
}

impl Default for Limits {
    /// 5 s for the head, 10 s in all: a scrape takes milliseconds.
    fn default() -> Limits {
        Limits { header_read: Duration::from_secs(5), connection: Duration::from_secs(10) }
    }
}

/// A bound metrics endpoint, not serving yet.
#[derive(Debug)]
pub struct Endpoint {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

/// Binds `addr` (port 0 picks one).
pub fn bind(addr: SocketAddr) -> std::io::Result<Endpoint> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok(Endpoint { listener, addr })
}

impl Endpoint {
    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on the tokio runtime this is called from, until the process ends.
    pub fn spawn(self, metrics: Arc<Metrics>, limits: Limits) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        tokio::spawn(accept(listener, metrics, limits));
        Ok(())
    }

    /// Serves from a thread of its own (with a current-thread runtime), until the process ends.
    pub fn spawn_thread(self, metrics: Arc<Metrics>, limits: Limits) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = {
            let _entered = rt.enter();
            tokio::net::TcpListener::from_std(self.listener)?
        };
        std::thread::Builder::new()
            .name("sluice-metrics".into())
            .spawn(move || rt.block_on(accept(listener, metrics, limits)))?;
        Ok(())
    }
}

/// Accepts connections and serves each on a task of its own.
async fn accept(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, limits: Limits) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                warn!("metrics: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let page = answer(&req, &metrics);
                async move { Ok::<_, Infallible>(page) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.connection, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("metrics: connection from {peer}: {e}"),
                Err(_) => {
                    debug!("metrics: connection from {peer} still open after {:?}: closed", limits.connection)
                }
            }
        });
    }
}

/// The response to one request.
fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "not found: the metrics are at /metrics\n");
    }
    if req.method() != Method::GET {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, "method not allowed: GET /metrics\n");
        r.headers_mut().insert(ALLOW, "GET".parse().unwrap_or_else(|_| unreachable!("a valid header")));
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
    r.headers_mut()
        .insert(CONTENT_TYPE, super::CONTENT_TYPE.parse().unwrap_or_else(|_| unreachable!("a valid header")));
    r
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: Limits) -> SocketAddr {
        let metrics = Arc::new(Metrics::new(Vec::new));
        metrics.update(|f| f.generation = 7);
        let endpoint = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr();
        endpoint.spawn(metrics, limits).unwrap();
        addr
    }

    /// Sends `request` and reads the whole answer (2 s at most).
    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer))
            .await
            .expect("answered within 2 s")
            .unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[tokio::test]
    async fn get_metrics_answers_the_page_and_nothing_else_does() {
        let addr = start(Limits::default()).await;
        let page = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{page}");
        assert!(page.contains("\nsluice_control_generation 7\n"), "{page}");
        let other = exchange(addr, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
        let post = exchange(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{post}");
        assert!(post.contains("allow: GET\r\n"), "{post}");
    }

    /// A client that connects and sends nothing holds no one up (a server that took one
    /// connection at a time would make the scrape wait out the 30 s header timeout).
    #[tokio::test]
    async fn a_stalled_client_blocks_no_other_scrape() {
        let limits = Limits { header_read: Duration::from_secs(30), connection: Duration::from_secs(60) };
        let addr = start(limits).await;
        let _stalled = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let page = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.contains("sluice_control_generation 7\n"), "{page}");
    }

    /// A client that connects and sends nothing is cut off after the header timeout.
    #[tokio::test]
    async fn a_stalled_client_is_cut_off_after_the_header_timeout() {
        let limits = Limits { header_read: Duration::from_millis(300), connection: Duration::from_secs(30) };
        let addr = start(limits).await;
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(Duration::from_secs(2), stalled.read_to_end(&mut rest)).await;
        assert!(cut.is_ok(), "the stalled connection is still open after 2 s");
    }

    /// The connection's time bounds the whole exchange, whatever the client is slow at (here:
    /// sending its head, more slowly than the header timeout would catch).
    #[tokio::test]
    async fn a_slow_client_is_cut_off_when_the_connections_time_is_up() {
        let limits = Limits { header_read: Duration::from_secs(5), connection: Duration::from_millis(300) };
        let addr = start(limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Keep the head incomplete: hyper waits for the rest until the connection's time is up.
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        assert!(cut.is_ok(), "the connection is still open after 2 s");
    }
}
