//! `sluice-probe`: one-shot socket checks the namespace tests run inside a namespace (with
//! `ip netns exec`), each bounded in time; exit status 0 means the check held.
//!
//! - `udp-refused ADDR:PORT`: sends datagrams from a connected UDP socket to a port nobody
//!   listens on, and succeeds when the kernel reports the ICMP port unreachable that comes back
//!   (`ECONNREFUSED`) within 3 s — the ICMP error reached the sending host's kernel.
//! - `tcp-sink ADDR:PORT`: accepts connections and answers each with the number of bytes it
//!   read before the peer's half-close (runs until killed).
//! - `tcp-send ADDR:PORT BYTES`: sends `BYTES` bytes, half-closes, and succeeds when the sink's
//!   count matches within 10 s.
//! - `arp-forge IFACE SENDER_IP TARGET_IP SECONDS`: broadcasts three forged ARP requests on
//!   `IFACE` — who has `TARGET_IP`? tell `SENDER_IP` at *this* interface's MAC — prints `forged`,
//!   then counts the frames addressed to this MAC for `SECONDS` (or until SIGTERM) and prints
//!   `ip_frames N arp_frames M`: IP frames here are traffic the forgery diverted.
#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|e| format!("{s}: {e}"))
}

fn udp_refused(to: SocketAddr) -> Result<(), String> {
    let bind: SocketAddr =
        if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(|e| format!("{e}"))?;
    let s = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    s.connect(to).map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        match s.send(b"probe") {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => return Err(format!("send: {e}")),
            Ok(_) => {}
        }
        match s.recv(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("recv: {e}")),
            Ok(n) => return Err(format!("{to} answered {n} bytes: something listens there")),
        }
    }
    Err(format!("no ICMP port unreachable from {to} reached this host within 3 s"))
}

fn tcp_sink(at: SocketAddr) -> Result<(), String> {
    let l = TcpListener::bind(at).map_err(|e| format!("listen {at}: {e}"))?;
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        let _ = c.set_read_timeout(Some(Duration::from_secs(20)));
        let mut n = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(_) => break,
            }
        }
        let _ = c.write_all(format!("{n}\n").as_bytes());
    }
    Ok(())
}

fn tcp_send(to: SocketAddr, bytes: u64) -> Result<(), String> {
    let mut c =
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| format!("connect {to}: {e}"))?;
    c.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let chunk = vec![b'x'; 16 << 10];
    let mut left = bytes;
    while left > 0 {
        let k = left.min(chunk.len() as u64) as usize;
        c.write_all(&chunk[..k])
            .map_err(|e| format!("send ({} of {bytes} bytes sent): {e}", bytes - left))?;
        left -= k as u64;
    }
    c.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    c.read_to_string(&mut answer).map_err(|e| format!("waiting for the count: {e}"))?;
    match answer.trim().parse::<u64>() {
        Ok(n) if n == bytes => Ok(()),
        _ => Err(format!("the sink counted {:?}, not {bytes}", answer.trim())),
    }
}

fn arp_forge(iface: &str, sender: &str, target: &str, seconds: &str) -> Result<(), String> {
    let sender: std::net::Ipv4Addr = sender.parse().map_err(|e| format!("{sender}: {e}"))?;
    let target: std::net::Ipv4Addr = target.parse().map_err(|e| format!("{target}: {e}"))?;
    let seconds: f64 = seconds.parse().map_err(|e| format!("{seconds}: {e}"))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, std::sync::Arc::clone(&stop))
        .map_err(|e| e.to_string())?;
    let got = sluice_sandbox::forge::forge_arp(iface, sender, target, seconds, &stop, || {
        println!("forged");
        let _ = std::io::stdout().flush();
    })?;
    println!("ip_frames {} arp_frames {}", got.ip_frames, got.arp_frames);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match args[..] {
        ["udp-refused", to] => addr(to).and_then(udp_refused),
        ["tcp-sink", at] => addr(at).and_then(tcp_sink),
        ["arp-forge", iface, sender, target, seconds] => arp_forge(iface, sender, target, seconds),
        ["tcp-send", to, n] => match n.parse() {
            Ok(n) => addr(to).and_then(|a| tcp_send(a, n)),
            Err(e) => Err(format!("{n}: {e}")),
        },
        _ => Err("usage: sluice-probe udp-refused ADDR:PORT | tcp-sink ADDR:PORT | tcp-send ADDR:PORT BYTES"
            .into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
