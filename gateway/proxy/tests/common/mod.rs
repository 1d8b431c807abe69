//! Loopback fixtures: a small HTTP/1.1 backend on a thread, the proxy on its own thread with
//! its own mio poll (as a worker runs it), and a raw client. Everything stops on drop.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use rustls::ServerConfig;
use sluice_model::l7::{Endpoint, L7Table, Upstream};
use sluice_model::route::{
    Backend as RouteBackend, HostRule, IngressRef, IngressSpec, PathSpec, PathType, RouteTable, RulePath,
    RuleSpec, ServiceBackend, ServicePort,
};
use sluice_proxy::{Proxy, ProxyConfig, ProxyStats};

/// A backend: `/echo` answers the request body, `/headers` the request head, `/big?n=N` N
/// bytes, `/sink` the body's length, `/ws` upgrades and echoes, `/chunked` a chunked
/// answer, `/trailers` a chunked answer whose data is the request's trailer lines and whose
/// trailers are `X-Checksum: 42` and `Set-Cookie: no=1`, `/silent` never answers; anything else
/// `ok`.
pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&connections), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let s = Arc::clone(&s);
                        std::thread::spawn(move || serve(stream, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend { addr, connections, stop, thread: Some(thread) }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, stop: &AtomicBool) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let Some((head, fields)) = read_head(&mut r) else { return };
        let target = head.split(' ').nth(1).unwrap_or("/").to_string();
        let body_len =
            fields.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<u64>().unwrap());
        let chunked = fields.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let expect = fields.iter().any(|(n, _)| n == "expect");
        if expect {
            let _ = w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        // `/once`: answered, then the connection is closed without a word (a keep-alive
        // connection the upstream drops, as servers do on their idle timeout).
        let keep = target != "/once";
        let mut body = Vec::new();
        let mut trailers = String::new();
        let mut count = 0u64;
        let store = !target.starts_with("/sink");
        let mut take = |data: &[u8]| {
            count += data.len() as u64;
            if store {
                body.extend_from_slice(data);
            }
        };
        if let Some(mut n) = body_len {
            let mut buf = vec![0u8; 64 * 1024];
            while n > 0 {
                let m = r.read(&mut buf[..n.min(64 * 1024) as usize]).unwrap_or(0);
                if m == 0 {
                    return;
                }
                take(&buf[..m]);
                n -= m as u64;
            }
        } else if chunked {
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let n = usize::from_str_radix(line.trim_end().split(';').next().unwrap(), 16).unwrap();
                if n == 0 {
                    loop {
                        let mut l = String::new();
                        r.read_line(&mut l).unwrap();
                        if l == "\r\n" {
                            break;
                        }
                        trailers.push_str(&l);
                    }
                    break;
                }
                let mut data = vec![0u8; n + 2];
                r.read_exact(&mut data).unwrap();
                take(&data[..n]);
            }
        }
        let ok = |w: &mut TcpStream, body: &[u8]| {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            w.write_all(head.as_bytes()).and_then(|()| w.write_all(body))
        };
        let res = match target.as_str() {
            "/echo" => ok(&mut w, &body),
            "/headers" => ok(&mut w, head_text(&head, &fields).as_bytes()),
            "/sink" => ok(&mut w, count.to_string().as_bytes()),
            "/chunked" => w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "/trailers" => {
                let head = "HTTP/1.1 200 OK\r\nTrailer: X-Checksum, Set-Cookie\r\nTransfer-Encoding: chunked\r\n\r\n";
                let chunk = if trailers.is_empty() { String::new() } else { format!("{:x}\r\n{trailers}\r\n", trailers.len()) };
                let end = "0\r\nX-Checksum: 42\r\nSet-Cookie: no=1\r\n\r\n";
                w.write_all(format!("{head}{chunk}{end}").as_bytes())
            }
            "/silent" => {
                while !stop.load(Ordering::Relaxed) {
                    let mut b = [0u8; 1];
                    if matches!(r.read(&mut b), Ok(0)) {
                        return;
                    }
                }
                return;
            }
            "/ws" => {
                w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
                let mut buf = [0u8; 4096];
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            t if t.starts_with("/big?n=") => {
                let n: usize = t["/big?n=".len()..].parse().unwrap();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                let piece = vec![b'z'; 64 * 1024];
                let mut res = w.write_all(head.as_bytes());
                let mut left = n;
                while left > 0 && res.is_ok() {
                    let m = left.min(piece.len());
                    res = w.write_all(&piece[..m]);
                    left -= m;
                }
                res
            }
            _ => ok(&mut w, b"ok"),
        };
        if res.is_err() || !keep {
            return;
        }
    }
}

fn head_text(line: &str, fields: &[(String, String)]) -> String {
    let mut s = format!("{line}\n");
    for (n, v) in fields {
        s.push_str(&format!("{n}: {v}\n"));
    }
    s
}

/// Reads a head: the first line, and the fields with lowercase names.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let first = line.trim_end().to_string();
    let mut fields = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).ok()? == 0 {
            return None;
        }
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        fields.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Some((first, fields))
}

/// A response as a client reads it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub fields: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The trailer fields of a chunked body, names lowercase.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length, chunked, or to close), skipping 1xx.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> Response {
    loop {
        let (line, fields) = read_head(r).expect("a response head");
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut body = Vec::new();
        let mut trailers = Vec::new();
        let len =
            fields.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse::<usize>().unwrap());
        let chunked = fields.iter().any(|(n, v)| n == "transfer-encoding" && v == "chunked");
        if head_request || status == 204 || status == 304 || status == 101 {
        } else if chunked {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                let n = usize::from_str_radix(l.trim_end(), 16).unwrap();
                if n == 0 {
                    loop {
                        let mut t = String::new();
                        r.read_line(&mut t).unwrap();
                        let Some((name, value)) = t.trim_end().split_once(':') else { break };
                        trailers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                    }
                    break;
                }
                let mut data = vec![0u8; n + 2];
                r.read_exact(&mut data).unwrap();
                body.extend_from_slice(&data[..n]);
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            r.read_exact(&mut body).unwrap();
        } else {
            r.read_to_end(&mut body).unwrap();
        }
        return Response { status, fields, body, trailers };
    }
}

/// A client connection to the proxy.
pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { w: s.try_clone().unwrap(), r: BufReader::with_capacity(64 * 1024, s) }
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes());
        read_response(&mut self.r, false)
    }
}

pub fn svc() -> ServiceBackend {
    ServiceBackend { namespace: "ns".into(), name: "web".into(), port: ServicePort::Number(80) }
}

/// `app.test/` → the web Service with these endpoints.
pub fn table(endpoints: &[SocketAddr]) -> L7Table {
    table_with(endpoints, Default::default())
}

/// [`table`], its Ingress with `policy` (its annotations).
pub fn table_with(endpoints: &[SocketAddr], policy: sluice_model::policy::Policy) -> L7Table {
    let ingress = IngressSpec {
        policy,
        canary: None,
        dialect: Default::default(),
        id: IngressRef::new("ns", "web"),
        created_unix_s: Some(1),
        default_backend: None,
        rules: vec![RuleSpec {
            host: HostRule::new(Some("app.test")).unwrap(),
            paths: vec![PathSpec {
                path_type: PathType::Prefix,
                path: RulePath::new("/").unwrap(),
                backend: RouteBackend::Service(svc()),
            }],
        }],
    };
    L7Table {
        routes: RouteTable::compile(&[ingress]),
        upstreams: vec![Upstream {
            external: None,
            service: svc(),
            endpoints: endpoints
                .iter()
                .map(|&addr| Endpoint { addr, ready: true, serving: true, terminating: false })
                .collect(),
        }],
        certificates: vec![],
        listeners: vec![],
    }
}

/// The proxy on its own thread, as a worker runs it.
pub struct Running {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub stats: Arc<Mutex<ProxyStats>>,
    pub log: Arc<Mutex<Vec<String>>>,
    /// While set, the proxy's loop does not call `Proxy::flush` (its held output stays held).
    pub hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub fn stats(&self) -> ProxyStats {
        *self.stats.lock().unwrap()
    }

    /// Waits (bounded) until the published counters satisfy `f`: the proxy thread publishes
    /// them after each loop.
    pub fn wait_stats(&self, what: &str, f: impl Fn(&ProxyStats) -> bool) -> ProxyStats {
        let t = Instant::now();
        loop {
            let s = self.stats();
            if f(&s) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{what}: {s:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn run_proxy(config: ProxyConfig, table: L7Table, tls: Option<Arc<ServerConfig>>) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(ProxyStats::default()));
    let log = Arc::new(Mutex::new(Vec::new()));
    let hold = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (s, st, lg, h) = (Arc::clone(&stop), Arc::clone(&stats), Arc::clone(&log), Arc::clone(&hold));
    let thread = std::thread::spawn(move || {
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(256);
        let registry = poll.registry().try_clone().unwrap();
        let mut proxy = Proxy::new(config, 1024..1024 + 4096);
        proxy.set_access_log(Box::new(move |line| lg.lock().unwrap().push(line.to_string())));
        proxy.set_generation(&registry, Arc::new(table));
        let http = proxy.listen(&registry, "127.0.0.1:0".parse().unwrap(), None).unwrap();
        let https = tls.map(|t| proxy.listen(&registry, "127.0.0.1:0".parse().unwrap(), Some(t)).unwrap());
        tx.send((http, https)).unwrap();
        let start = Instant::now();
        while !s.load(Ordering::Relaxed) {
            poll.poll(&mut events, Some(Duration::from_millis(20))).unwrap();
            let now = start.elapsed().as_nanos() as u64;
            for e in events.iter() {
                if proxy.owns(e.token()) {
                    proxy.handle(&registry, e, now);
                }
            }
            proxy.tick(&registry, now);
            if !h.load(Ordering::Relaxed) {
                proxy.flush(&registry, now);
            }
            *st.lock().unwrap() = proxy.stats();
        }
    });
    let (http, https) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Running { http, https, stats, log, hold, stop, thread: Some(thread) }
}
