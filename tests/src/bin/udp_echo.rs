//! `sluice-udp-echo`: the sandbox's UDP server and client.
//!
//! Server: `--name NAME --port P [--port Q …]` answers each datagram on every port, IPv4 and
//! IPv6, with `NAME:` followed by the datagram. Client: `--send ADDR:PORT PAYLOAD` sends one
//! datagram and prints the answer (exit 1 if none within 2 s, after three tries, or if the
//! answer comes from anywhere but ADDR:PORT: a gateway that failed to translate the reply's
//! source back to the service address must not pass for one that did).
#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: sluice-udp-echo --name NAME --port PORT [--port PORT…] | --send ADDR:PORT PAYLOAD");
    std::process::exit(2)
}

fn main() {
    sluice_log::init("warn");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--send") {
        let (Some(target), Some(payload)) = (args.get(1), args.get(2)) else { usage() };
        let Ok(target) = target.parse::<SocketAddr>() else { usage() };
        let bind = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let sock = UdpSocket::bind(bind).unwrap_or_else(|e| {
            eprintln!("bind: {e}");
            std::process::exit(1)
        });
        let _ = sock.set_read_timeout(Some(Duration::from_millis(700)));
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            if let Err(e) = sock.send_to(payload.as_bytes(), target) {
                eprintln!("send to {target}: {e}");
                std::process::exit(1);
            }
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                // Address and port only: a received IPv6 address carries no flow label or scope
                // for a global address, and the target's were not given.
                if (from.ip(), from.port()) != (target.ip(), target.port()) {
                    eprintln!(
                        "an answer from {from}, not from {target}: {}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                    std::process::exit(1);
                }
                println!("{}", String::from_utf8_lossy(&buf[..n]));
                return;
            }
        }
        eprintln!("no answer from {target}");
        std::process::exit(1);
    }
    let mut name = None;
    let mut ports = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--name" => name = it.next().cloned(),
            "--port" => ports.push(it.next().and_then(|p| p.parse::<u16>().ok()).unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    let (Some(name), false) = (name, ports.is_empty()) else { usage() };
    let mut threads = Vec::new();
    for p in ports {
        // One dual-stack socket per port (IPv4 arrives mapped).
        let sock = UdpSocket::bind(("::", p)).unwrap_or_else(|e| {
            eprintln!("bind [::]:{p}: {e}");
            std::process::exit(1)
        });
        let name = name.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let prefix = format!("{name}:");
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let mut reply = prefix.clone().into_bytes();
                reply.extend_from_slice(&buf[..n]);
                let _ = sock.send_to(&reply, from);
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}
