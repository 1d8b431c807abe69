//! HTTP/2 against real peers: the `h2_echo` example's server (our `h2::Conn` in the server
//! role, h2c with prior knowledge) on a thread, driven by `nghttp`, `curl
//! --http2-prior-knowledge` and `h2load` (Debian: nghttp2-client, curl); and our client role
//! against `nghttpd` (Debian: nghttp2-server). A missing tool skips its test loudly, unless
//! `SLUICE_REQUIRE_ROOT=1` (the full suite), where it fails.
//!
//! curl 7.88 cannot reuse an h2c prior-knowledge connection for a second URL (curl#10634,
//! fixed in 8.0): each curl run here asks for one URL.

#[expect(dead_code, reason = "the example's `main` is not called here")]
#[path = "../examples/h2_echo.rs"]
mod h2_echo;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;

/// The echo server's port, started once for every test of this file.
fn port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || h2_echo::run(listener));
        port
    })
}

/// Whether `tool` can be run; when not, says so loudly, and fails under SLUICE_REQUIRE_ROOT=1.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("SLUICE_REQUIRE_ROOT").as_deref() != Ok("1"),
            "{tool} is missing and SLUICE_REQUIRE_ROOT=1: install it (Debian: nghttp2-client, nghttp2-server, curl)"
        );
        eprintln!(
            "!!! SKIPPED: {tool} is not installed (Debian: nghttp2-client, nghttp2-server, curl); HTTP/2 interop NOT tested !!!"
        );
    }
    found
}

/// Runs a tool with a time limit, and returns what it printed.
fn run(tool: &str, args: &[&str]) -> Output {
    let out = Command::new("timeout").arg("30").arg(tool).args(args).output().expect("run timeout(1)");
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nghttp_gets_and_posts() {
    if !have("nghttp") {
        return;
    }
    let url = format!("http://127.0.0.1:{}/x", port());
    let out = stdout(&run("nghttp", &["-v", &url]));
    assert!(out.contains("recv (stream_id=13) :status: 200") || out.contains(":status: 200"), "{out}");
    assert!(out.contains("GET /x"), "{out}");
    assert!(!out.contains("GOAWAY frame <length=8, flags=0x00, stream_id=0>\n          (last_stream_id=0, error_code=PROTOCOL"), "{out}");
    // Several streams at once on one connection, and a body bigger than every window.
    let body = std::env::temp_dir().join(format!("sluice-h2-interop-{}.bin", std::process::id()));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&body, &data).unwrap();
    let post = format!("http://127.0.0.1:{}/post", port());
    let out = run("nghttp", &["-d", body.to_str().unwrap(), &post]);
    std::fs::remove_file(&body).ok();
    let mut want = b"POST /post\n".to_vec();
    want.extend_from_slice(&data);
    assert!(out.stdout == want, "the echo differs: {} bytes back, {} expected", out.stdout.len(), want.len());
    let a = format!("http://127.0.0.1:{}/a", port());
    let b = format!("http://127.0.0.1:{}/b", port());
    let out = stdout(&run("nghttp", &["-n", "-s", &a, &b, &a]));
    assert!(out.contains("/a") && out.contains("/b"), "{out}");
}

#[test]
fn curl_with_prior_knowledge() {
    if !have("curl") {
        return;
    }
    let url = format!("http://127.0.0.1:{}/hello?q=1", port());
    let out = stdout(&run(
        "curl",
        &["-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{response_code}", &url],
    ));
    assert_eq!(out, "GET /hello?q=1\n\n2 200");
    let url = format!("http://127.0.0.1:{}/echo", port());
    let out = stdout(&run("curl", &["-sS", "--http2-prior-knowledge", "--data-binary", "hello body", &url]));
    assert_eq!(out, "POST /echo\nhello body");
    // One head field over the 32 KiB list limit: 431 from the connection itself.
    let big = format!("x-big: {}", "a".repeat(40_000));
    let url = format!("http://127.0.0.1:{}/big", port());
    let out = stdout(&run(
        "curl",
        &["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{response_code}", "-H", &big, &url],
    ));
    assert_eq!(out, "431");
}

#[test]
fn h2load_gets_only_2xx() {
    if !have("h2load") {
        return;
    }
    let url = format!("http://127.0.0.1:{}/", port());
    let out = stdout(&run("h2load", &["-n", "400", "-c", "4", "-m", "10", &url]));
    assert!(out.contains("400 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 400 2xx"), "{out}");
}

/// nghttpd, killed when dropped.
struct Nghttpd(std::process::Child);

impl Drop for Nghttpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One exchange driven by our client role over a blocking socket: the response's status,
/// body and trailers.
fn exchange(
    sock: &mut std::net::TcpStream,
    conn: &mut sluice_l7::h2::Conn,
    id: sluice_l7::h2::StreamId,
    mut upload: &[u8],
) -> (u16, Vec<u8>, Vec<(String, String)>) {
    use sluice_l7::h2::Event;
    use std::io::{Read, Write};
    let (mut status, mut body, mut trailers, mut done) = (0, Vec::new(), Vec::new(), false);
    let mut input = vec![0u8; 1 << 17];
    let mut have = 0;
    while !done {
        if !upload.is_empty() {
            let n = conn.send_data(id, upload, true).expect("send_data");
            upload = &upload[n..];
        }
        let out = conn.write_buf();
        if !out.is_empty() {
            sock.write_all(out).unwrap();
            let n = out.len();
            conn.wrote(n);
        }
        let n = sock.read(&mut input[have..]).unwrap();
        assert!(n > 0, "nghttpd closed the connection");
        have += n;
        let mut off = 0;
        loop {
            let r = conn.recv(&input[off..have], 0);
            let consumed = r.consumed;
            let mut release = 0;
            match r.event {
                None if consumed == 0 => break,
                None => {}
                Some(Event::Head { stream, head, end_stream }) if stream == id => {
                    status = head.status().unwrap();
                    done |= end_stream;
                }
                Some(Event::Data { stream, data, end_stream }) if stream == id => {
                    body.extend_from_slice(&input[off..have][data.clone()]);
                    release = data.len();
                    done |= end_stream;
                }
                Some(Event::Trailers { stream, trailers: t }) if stream == id => {
                    trailers = t
                        .fields()
                        .map(|f| {
                            (String::from_utf8_lossy(f.name).into(), String::from_utf8_lossy(f.value).into())
                        })
                        .collect();
                    done = true;
                }
                Some(Event::WindowUpdate { .. }) => {}
                Some(other) => panic!("unexpected {other:?}"),
            }
            off += consumed;
            conn.release(id, release);
        }
        input.copy_within(off..have, 0);
        have -= off;
    }
    (status, body, trailers)
}

#[test]
fn our_client_role_against_nghttpd() {
    use sluice_l7::h2::hpack::Field;
    use sluice_l7::h2::{Config, Conn, Request, Role};
    if !have("nghttpd") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sluice-h2-nghttpd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &file).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Nghttpd(
        Command::new("nghttpd")
            .args(["--no-tls", "--echo-upload", "--trailer=x-check: ok", "-a", "127.0.0.1", "-d"])
            .arg(&dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start nghttpd"),
    );
    let mut sock = None;
    for _ in 0..100 {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(_) => thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    let mut sock = sock.expect("nghttpd did not start listening");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut conn = Conn::new(Role::Client, Config::DEFAULT);
    let authority = format!("127.0.0.1:{port}");
    let get = Request { method: b"GET", scheme: b"http", authority: authority.as_bytes(), path: b"/big.bin" };
    let id = conn.send_request(get, [Field::new(b"user-agent", b"sluice-test")], true).unwrap();
    let (status, body, trailers) = exchange(&mut sock, &mut conn, id, &[]);
    assert_eq!(status, 200);
    assert!(body == file, "{} bytes, {} expected", body.len(), file.len());
    assert_eq!(trailers, [("x-check".to_string(), "ok".to_string())]);
    // An upload larger than the stream window, echoed, on the same connection.
    let post = Request { method: b"POST", scheme: b"http", authority: authority.as_bytes(), path: b"/echo" };
    let id = conn.send_request(post, [Field::new(b"content-length", b"200000")], false).unwrap();
    let (status, body, _) = exchange(&mut sock, &mut conn, id, &file);
    assert_eq!(status, 200);
    assert!(body == file, "{} bytes echoed, {} expected", body.len(), file.len());
    std::fs::remove_dir_all(&dir).ok();
}
