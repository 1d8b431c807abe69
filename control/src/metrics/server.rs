//! The metrics endpoint: `GET /metrics` answers the page, any other path 404, any other method
//! on it 405. Served with hyper (HTTP/1.1) on a tokio runtime — control's own in cluster mode, a
//! current-thread runtime on a thread of its own in manifest mode.
//!
//! Every connection is a task of its own, so a slow client delays nobody else; and none is
//! held for long: the request's head must arrive within [`Limits::header_read`], and the whole
//! exchange — reading the request, writing the page — must end within [`Limits::connection`],
//! after which the connection is dropped (hyper has no write timeout of its own: this bound is
//! it, and why connections are not kept alive — one request each, so the bound never cuts a
//! second scrape short). A client that sends its request and never reads the page holds its task
//! until then, not the server.
//!
//! At most [`Limits::max_connections`] connections are served at once, each holding at most one
//! page: what stalled clients can make the server hold is that many pages, for that long. The
//! connections past it wait in the listen backlog until one ends.
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
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 5 s for the head, 10 s in all: a scrape takes milliseconds. 64 connections: Prometheus
    /// servers scrape one at a time each.
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(5),
            connection: Duration::from_secs(10),
            max_connections: 64,
        }
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
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
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
            let _slot = slot;
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
        let limits = Limits {
            header_read: Duration::from_secs(30),
            connection: Duration::from_secs(60),
            ..Limits::default()
        };
        let addr = start(limits).await;
        let _stalled = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let page = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.contains("sluice_control_generation 7\n"), "{page}");
    }

    /// A client that connects and sends nothing is cut off after the header timeout.
    #[tokio::test]
    async fn a_stalled_client_is_cut_off_after_the_header_timeout() {
        let limits = Limits {
            header_read: Duration::from_millis(300),
            connection: Duration::from_secs(30),
            ..Limits::default()
        };
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
        let limits = Limits {
            header_read: Duration::from_secs(5),
            connection: Duration::from_millis(300),
            ..Limits::default()
        };
        let addr = start(limits).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Keep the head incomplete: hyper waits for the rest until the connection's time is up.
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        assert!(cut.is_ok(), "the connection is still open after 2 s");
    }

    /// Serves a page of `workers` gateway workers: some 5 KB each.
    async fn start_big(limits: Limits, workers: u64) -> (SocketAddr, usize) {
        let mut values = vec![1u64; crate::metrics::LEN];
        values[crate::metrics::COUNT] = sluice_model::counters::fingerprint();
        let stats: crate::metrics::WorkerStats = (0..workers).map(|pid| (pid + 1, values.clone())).collect();
        let metrics = Arc::new(Metrics::new(move || stats.clone()));
        let size = metrics.render().len();
        let endpoint = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr();
        endpoint.spawn(metrics, limits).unwrap();
        (addr, size)
    }

    /// A client that sends its request and never reads a page larger than the socket buffers
    /// hold (its own receive buffer made small, as a hostile client's may be): the server's write to it blocks — and that stalls no other scrape, and is cut off
    /// when the connection's time is up (hyper has no write timeout: this is it).
    #[tokio::test(flavor = "current_thread")]
    async fn a_client_that_never_reads_stalls_nothing_and_is_cut_off() {
        let limits = Limits { connection: Duration::from_millis(1500), ..Limits::default() };
        let (addr, size) = start_big(limits, 2000).await;
        // The client's receive buffer is made small; the server's send buffer grows to the last
        // figure of tcp_wmem at most. The page must not fit in both.
        let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
        let send_buffer: usize = wmem.split_whitespace().last().unwrap().parse().unwrap();
        assert!(size > send_buffer + 64 * 1024, "a page of {size} bytes fits in the socket buffers");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut never_reads = socket.connect(addr).await.unwrap();
        never_reads.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Another scrape, meanwhile, gets the whole page.
        let started = std::time::Instant::now();
        let page = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.len() > size, "{} bytes", page.len());
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        // Past the connection's time, the stalled one has been closed: reading it now ends, short.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), never_reads.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the connection that never read is still open");
        assert!(got.len() < size, "it got the whole page ({} bytes): nothing was cut off", got.len());
    }

    /// Past `max_connections`, a connection waits for one to end rather than adding a page to
    /// what the server holds.
    #[tokio::test(flavor = "current_thread")]
    async fn connections_past_the_limit_wait_for_a_slot() {
        let limits =
            Limits { connection: Duration::from_millis(800), max_connections: 1, ..Limits::default() };
        let addr = start(limits).await;
        let _held = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let page = exchange(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(page.contains("sluice_control_generation 7\n"), "{page}");
        assert!(started.elapsed() >= Duration::from_millis(500), "served at once: {:?}", started.elapsed());
    }
}
