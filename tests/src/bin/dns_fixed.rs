//! `sluice-dns-fixed`: the sandbox's DNS server, for ExternalName Services.
//!
//! `--listen ADDR:PORT --zone FILE --ttl SECONDS`: answers each A query (RFC 1035, UDP) for a
//! name the zone file lists (`name address` lines, read again at every query, so a test can
//! change an answer by rewriting the file) with its addresses and the TTL; AAAA queries and
//! names it lacks get an empty answer, or NXDOMAIN for an unknown name. It prints one line per
//! query (`query NAME TYPE`), which tests count.
#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};

fn usage() -> ! {
    eprintln!("usage: sluice-dns-fixed --listen ADDR:PORT --zone FILE --ttl SECONDS");
    std::process::exit(2)
}

/// The question's name (labels joined by dots, lowercase) and where the question ends.
fn question(m: &[u8]) -> Option<(String, usize)> {
    let mut at = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*m.get(at)?);
        if len == 0 {
            return Some((name, at + 1));
        }
        if len > 63 {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(m.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned();
    let (Some(listen), Some(zone), Some(ttl)) = (flag("--listen"), flag("--zone"), flag("--ttl")) else {
        usage()
    };
    let (Ok(listen), Ok(ttl)) = (listen.parse::<SocketAddr>(), ttl.parse::<u32>()) else { usage() };
    let sock = UdpSocket::bind(listen).unwrap_or_else(|e| {
        eprintln!("bind {listen}: {e}");
        std::process::exit(1)
    });
    println!("listening on {listen}");
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        let m = &buf[..n];
        let Some((name, end)) = question(m) else { continue };
        let Some(qtype) = m.get(end..end + 2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
        println!("query {name} {}", if qtype == 1 { "A" } else { "other" });
        let text = std::fs::read_to_string(&zone).unwrap_or_default();
        let addrs: Vec<std::net::Ipv4Addr> = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(n, _)| n.trim() == name)
            .filter_map(|(_, a)| a.trim().parse().ok())
            .collect();
        let known = text.lines().any(|l| l.split_whitespace().next() == Some(name.as_str()));
        let mut out = m[..end + 4].to_vec();
        out[2] = 0x81 | (m[2] & 0x01);
        out[3] = if known { 0x80 } else { 0x83 };
        let answers: &[std::net::Ipv4Addr] = if qtype == 1 { &addrs } else { &[] };
        out[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        out[8..12].fill(0);
        for a in answers {
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&[0, 4]);
            out.extend_from_slice(&a.octets());
        }
        let _ = sock.send_to(&out, from);
    }
}
