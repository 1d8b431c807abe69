//! `sluice-l7-load`: the servers and clients of the L7 load tests (`tests/tests/l7_load.rs`),
//! each a subcommand, run inside a sandbox namespace.
//!
//! - `ws-echo ADDR:PORT`: a WebSocket server. It answers an upgrade request with 101 and the
//!   `Sec-WebSocket-Accept` of RFC 6455 §4.2.2, then sends every data frame back, unmasked, with
//!   its opcode and payload, and a close frame for a close frame. A request without upgrade gets
//!   `200 ws-echo` (a readiness probe).
//! - `ws-client ADDR:PORT HOST FRAMES`: upgrades `GET /ws` on `HOST`, checks the 101 and its
//!   accept key, sends FRAMES masked frames of sizes that take each of the three length
//!   encodings, checks each comes back unchanged, closes. Prints `ok FRAMES frames BYTES bytes`.
//! - `sink ADDR:PORT`: an HTTP/1.1 server that reads each request's Content-Length body through
//!   `sha256sum` and answers `200 BYTES SHA256`; `100 Continue` when asked. A request without a
//!   body gets `200 sink`.
//! - `hold ADDR:PORT HOST COUNT SAMPLE [CA_PEM SNI]`: opens COUNT keep-alive connections (TLS
//!   with a CA and a server name), one `GET /` answered 200 on each, prints `held COUNT`, waits
//!   for a line on standard input, sends one more `GET /` on every (COUNT/SAMPLE)th connection
//!   and prints `served OK of SAMPLE`; exit 1 on any failure, with what failed.
//!
//! Blocking sockets, a thread per connection for the servers: these are test tools, not
//! benchmarks. Every wait has a timeout.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// How long any read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The GUID of RFC 6455 §1.3, appended to the client's key.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn usage() -> ! {
    eprintln!(
        "usage: sluice-l7-load ws-echo ADDR:PORT | ws-client ADDR:PORT HOST FRAMES | sink ADDR:PORT\n\
         \x20      | hold ADDR:PORT HOST COUNT SAMPLE [CA_PEM SNI]"
    );
    std::process::exit(2)
}

fn fail(what: &str) -> ! {
    eprintln!("sluice-l7-load: {what}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap_or_else(|_| usage());
    let num = |s: &str| s.parse::<usize>().unwrap_or_else(|_| usage());
    match a.as_slice() {
        ["ws-echo", listen] => serve(addr(listen), ws_echo),
        ["ws-client", to, host, frames] => ws_client(addr(to), host, num(frames)),
        ["sink", listen] => serve(addr(listen), sink),
        ["hold", to, host, count, sample] => hold(addr(to), host, num(count), num(sample), None),
        ["hold", to, host, count, sample, ca, sni] => {
            hold(addr(to), host, num(count), num(sample), Some((ca, sni)))
        }
        _ => usage(),
    }
}

/// Accepts forever, a thread per connection running `handle`.
fn serve(listen: SocketAddr, handle: fn(TcpStream) -> io::Result<()>) {
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| fail(&format!("bind {listen}: {e}")));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        std::thread::spawn(move || {
            if let Err(e) = handle(conn) {
                eprintln!("connection: {e}");
            }
        });
    }
}

/// A request or response head: its bytes up to and including the empty line, and what came
/// after it in the same reads.
struct Head {
    text: String,
    rest: Vec<u8>,
}

impl Head {
    /// The value of a field (name case-insensitive), trimmed.
    fn field(&self, name: &str) -> Option<&str> {
        self.text.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads a head (at most 64 KiB). `Ok(None)` at a clean end of stream before any byte.
fn read_head<R: Read + ?Sized>(s: &mut R) -> io::Result<Option<Head>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some(Head { text: String::from_utf8_lossy(&buf).into_owned(), rest }));
        }
        if buf.len() > 64 << 10 {
            return Err(io::Error::other("head over 64 KiB"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A response with a Content-Length body: (status, body).
fn read_response<R: Read + ?Sized>(s: &mut R) -> io::Result<(u16, Vec<u8>)> {
    let head = read_head(s)?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    let status = head.text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let len: usize = head
        .field("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Content-Length in {:?}", head.text)))?;
    let mut body = head.rest;
    let mut chunk = [0u8; 4096];
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, body))
}

fn respond(s: &mut impl Write, status: &str, body: &str) -> io::Result<()> {
    // One write (see `get`).
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(response.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/// SHA-1 (FIPS 180-4), for the accept key only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..20 => ((b & c) | (!b & d), 0x5A82_7999),
                20..40 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..60 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 6455 §4.2.2: base64(SHA-1(key ++ GUID)).
fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{key}{WS_GUID}").as_bytes()))
}

/// One frame: (opcode, payload). RFC 6455 §5.2; FIN is assumed (no fragmentation here).
fn read_frame(s: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let opcode = h[0] & 0x0f;
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l)?;
            u64::from(u16::from_be_bytes(l))
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l)?;
            u64::from_be_bytes(l)
        }
        n => u64::from(n),
    };
    if len > 16 << 20 {
        return Err(io::Error::other(format!("frame of {len} bytes")));
    }
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask)?;
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// A final frame; masked with `mask` when given (a client's frames must be, §5.3).
fn write_frame(s: &mut impl Write, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> io::Result<()> {
    let mut f = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    s.write_all(&f)
}

fn ws_echo(mut s: TcpStream) -> io::Result<()> {
    let Some(head) = read_head(&mut s)? else { return Ok(()) };
    let upgrade = head.field("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = head.field("sec-websocket-key").filter(|_| upgrade) else {
        return respond(&mut s, "200 OK", "ws-echo\n");
    };
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    )?;
    let mut input = io::Cursor::new(head.rest).chain(s.try_clone()?);
    loop {
        let (opcode, payload) = read_frame(&mut input)?;
        write_frame(&mut s, opcode, &payload, None)?;
        if opcode == 8 {
            return Ok(());
        }
    }
}

fn ws_client(to: SocketAddr, host: &str, frames: usize) {
    let mut s = connect(to);
    // A fixed 16-byte nonce is enough for a test (§4.1 asks for a random one).
    let key = base64(b"sluice-l7-load!!");
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap_or_else(|e| fail(&format!("sending the upgrade: {e}")));
    let head = read_head(&mut s).ok().flatten().unwrap_or_else(|| fail("no answer to the upgrade request"));
    let status = head.text.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        fail(&format!("upgrade answered {:?}", head.text));
    }
    let expected = accept_key(&key);
    if head.field("sec-websocket-accept") != Some(expected.as_str()) {
        fail(&format!("accept key: expected {expected}, response:\n{}", head.text));
    }
    let mut input = io::Cursor::new(head.rest).chain(s.try_clone().unwrap_or_else(|e| fail(&e.to_string())));
    let sizes = [0usize, 1, 125, 126, 1000, 65_535, 65_536, 200_000];
    let mut bytes = 0;
    for i in 0..frames {
        let len = sizes[i % sizes.len()];
        let payload: Vec<u8> = (0..len).map(|j| (j * 31 + i * 7) as u8).collect();
        let opcode = if i % 2 == 0 { 2 } else { 1 };
        let payload = if opcode == 1 { payload.iter().map(|b| b'a' + b % 26).collect() } else { payload };
        let mask = [i as u8, 0x5a, 0xa5, (i >> 8) as u8];
        write_frame(&mut s, opcode, &payload, Some(mask))
            .unwrap_or_else(|e| fail(&format!("frame {i}: {e}")));
        let (op, back) = read_frame(&mut input).unwrap_or_else(|e| fail(&format!("echo of frame {i}: {e}")));
        if (op, &back) != (opcode, &payload) {
            fail(&format!(
                "frame {i} ({len} bytes, opcode {opcode}) came back as {} bytes, opcode {op}",
                back.len()
            ));
        }
        bytes += len;
    }
    // Close, status 1000 (§7.4.1); the echo answers with a close.
    write_frame(&mut s, 8, &1000u16.to_be_bytes(), Some([1, 2, 3, 4]))
        .unwrap_or_else(|e| fail(&e.to_string()));
    match read_frame(&mut input) {
        Ok((8, p)) if p == 1000u16.to_be_bytes() => {}
        other => fail(&format!("close answered with {other:?}")),
    }
    println!("ok {frames} frames {bytes} bytes");
}

// ---------------------------------------------------------------------------------------------
// The sink

fn sink(mut s: TcpStream) -> io::Result<()> {
    while let Some(head) = read_head(&mut s)? {
        let Some(len) = head.field("content-length").and_then(|v| v.parse::<u64>().ok()) else {
            if head.field("transfer-encoding").is_some() {
                respond(&mut s, "411 Length Required", "sink: Content-Length bodies only\n")?;
                return Ok(());
            }
            respond(&mut s, "200 OK", "sink\n")?;
            continue;
        };
        if head.field("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut sum = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let mut to_sum = sum.stdin.take().ok_or_else(|| io::Error::other("sha256sum stdin"))?;
        let copied = io::copy(&mut io::Cursor::new(head.rest).chain(&mut s).take(len), &mut to_sum)?;
        drop(to_sum);
        let out = sum.wait_with_output()?;
        let digest = String::from_utf8_lossy(&out.stdout);
        let digest = digest.split_whitespace().next().unwrap_or("");
        if copied < len {
            return Err(io::Error::other(format!("body ended after {copied} of {len} bytes")));
        }
        respond(&mut s, "200 OK", &format!("{copied} {digest}\n"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Idle keep-alive connections

/// A client connection, plain or TLS.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn connect(to: SocketAddr) -> TcpStream {
    let s =
        TcpStream::connect_timeout(&to, IO_TIMEOUT).unwrap_or_else(|e| fail(&format!("connect {to}: {e}")));
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let _ = s.set_nodelay(true);
    s
}

/// One `GET /` that must be answered 200.
fn get(s: &mut dyn Stream, host: &str) -> Result<(), String> {
    // One write, one segment: a request written in pieces meets Nagle's algorithm and the
    // server's delayed ACK, 40 ms a request.
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sluice-l7-load\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
    match read_response(s) {
        Ok((200, _)) => Ok(()),
        Ok((status, body)) => Err(format!("status {status}: {}", String::from_utf8_lossy(&body))),
        Err(e) => Err(e.to_string()),
    }
}

fn tls_config(ca: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap_or_else(|e| fail(&format!("{ca}: {e}")))
    {
        let cert = cert.unwrap_or_else(|e| fail(&format!("{ca}: {e}")));
        roots.add(cert).unwrap_or_else(|e| fail(&format!("{ca}: {e}")));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(&e.to_string()))
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Lets this process hold `n` sockets and some more.
fn raise_nofile(n: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = n as u64 + 256;
    let now = getrlimit(Resource::Nofile);
    if now.current.is_some_and(|c| c >= want) {
        return;
    }
    let maximum = now.maximum.map(|m| m.max(want));
    if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum }) {
        fail(&format!("RLIMIT_NOFILE to {want}: {e}"));
    }
}

fn hold(to: SocketAddr, host: &str, count: usize, sample: usize, tls: Option<(&str, &str)>) {
    raise_nofile(count);
    let tls = tls.map(|(ca, sni)| {
        let name = rustls_pki_types::ServerName::try_from(sni.to_owned())
            .unwrap_or_else(|e| fail(&format!("server name {sni}: {e}")));
        (tls_config(ca), name)
    });
    // A few threads open them: a round trip each, a handshake each with TLS.
    const THREADS: usize = 4;
    let opened: Vec<Vec<Box<dyn Stream>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let tls = tls.clone();
                scope.spawn(move || {
                    let mine = count / THREADS + usize::from(t < count % THREADS);
                    let mut conns: Vec<Box<dyn Stream>> = Vec::with_capacity(mine);
                    for i in 0..mine {
                        let tcp = connect(to);
                        let mut s: Box<dyn Stream> = match &tls {
                            Some((config, name)) => {
                                let c = rustls::ClientConnection::new(Arc::clone(config), name.clone())
                                    .unwrap_or_else(|e| fail(&e.to_string()));
                                Box::new(rustls::StreamOwned::new(c, tcp))
                            }
                            None => Box::new(tcp),
                        };
                        if let Err(e) = get(&mut *s, host) {
                            fail(&format!("connection {i} of thread {t}: {e}"));
                        }
                        conns.push(s);
                    }
                    conns
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| fail("a thread panicked"))).collect()
    });
    let mut conns: Vec<Box<dyn Stream>> = opened.into_iter().flatten().collect();
    println!("held {}", conns.len());
    let _ = io::stdout().flush();
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    let step = (conns.len() / sample.max(1)).max(1);
    let (mut tried, mut ok) = (0, 0);
    for (i, s) in conns.iter_mut().enumerate().step_by(step).take(sample) {
        tried += 1;
        match get(&mut **s, host) {
            Ok(()) => ok += 1,
            Err(e) => eprintln!("connection {i}: {e}"),
        }
    }
    println!("served {ok} of {tried}");
    if ok != tried {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::{accept_key, base64, sha1};

    #[test]
    fn sha1_and_base64_match_the_standards_examples() {
        // FIPS 180-4 example "abc"; RFC 4648 §10; RFC 6455 §1.3's handshake.
        let hex: String = sha1(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
        for (i, o) in ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"].iter().enumerate() {
            assert_eq!(base64(&b"foobar"[..i]), *o);
        }
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
