//! Seed corpora, built from the workspace's own fixtures when a target starts with
//! `SLUICE_FUZZ_SEEDS=<dir>` (what `fuzz/run` does): frames from the worker tests' builders
//! along the warm flows, images of the test tables and of the control fixtures' compiled tables,
//! the table file control writes, control's manifest fixtures and examples, the netlink
//! messages of the unit tests, and HTTP/1.1 requests like `sluice-l7`'s fixtures. Written as files `seed-<name>` into `<dir>`, before libFuzzer
//! reads it.
//!
//! Also the image target's allocation bound ([`image_bound`]), so that it is written once.

use std::path::{Path, PathBuf};

use crate::frames::{self, End, FrameSpec, Harness, Record};

/// Writes the seeds of `target` into `$SLUICE_FUZZ_SEEDS`, if set.
pub fn write_if_asked(target: &str) {
    let Some(dir) = std::env::var_os("SLUICE_FUZZ_SEEDS") else { return };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let seeds = match target {
        "frames" => frames(),
        "image" => images(),
        "table_reader" => table_files(),
        "manifests" => manifests(),
        "netlink" => netlink(),
        "h1" => h1(),
        "h2" => h2(),
        "htpasswd" => htpasswd(),
        "annotations" => annotations(),
        "hpack" => hpack(),
        "tls_hello" => tls_hello(),
        other => panic!("no seeds for target {other:?}"),
    };
    for (name, bytes) in &seeds {
        let p = dir.join(format!("seed-{name}"));
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    eprintln!("{target}: {} seeds written to {}", seeds.len(), dir.display());
}

/// The workspace root.
fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

// ---- frames ---------------------------------------------------------------------------------

fn frames() -> Vec<(String, Vec<u8>)> {
    use frames::tcp_flags::*;
    let h = Harness::warm();
    let mut out = Vec::new();
    for (i, k) in h.flows.iter().enumerate() {
        let gw = |e: End| End { mac: frames::GW_MAC, ..e };
        let data = |src: End, dst: End, flags| {
            if k.tcp {
                frames::tcp(src, dst, flags, 101, 5001, b"more data")
            } else {
                frames::udp(src, dst, b"more")
            }
        };
        // Data both ways, then the close (or, for UDP, the flow expires and starts again).
        let mut r = Record::default()
            .frame(&data(k.client, gw(k.frontend), ACK | PSH))
            .frame(&data(k.backend, gw(k.gateway), ACK | PSH))
            .batch();
        r = if k.tcp {
            r.frame(&data(k.client, gw(k.frontend), FIN | ACK))
                .frame(&data(k.backend, gw(k.gateway), FIN | ACK))
                .frame(&data(k.client, gw(k.frontend), ACK))
        } else {
            r.wait_ms(600_000).frame(&data(k.client, gw(k.frontend), 0))
        };
        out.push((format!("flow-{i}"), r.0));
        // The table changes under it: backend 2 leaves, the unknown backend joins (parked until
        // its neighbour is learnt).
        let r = Record::default()
            .table(1)
            .frame(&data(k.client, gw(k.frontend), ACK))
            .frame(&data(k.backend, gw(k.gateway), ACK))
            .frame(&frames::tcp(End { port: 41_000 + i as u16, ..k.client }, gw(k.frontend), SYN, 1, 0, b""))
            .learn()
            .batch()
            .table(0)
            .frame(&data(k.backend, gw(k.gateway), RST));
        out.push((format!("table-swap-{i}"), r.0));
        // ICMP errors quoting the flow, from each side.
        for (j, side) in [frames::Side::Client, frames::Side::Backend].into_iter().enumerate() {
            let spec = FrameSpec::IcmpError {
                flow: i as u8,
                side,
                from_router: j == 0,
                error: frames::IcmpError::TooBig(1400),
                quote_len: 60,
                vlan: frames::Vlan::None,
            };
            out.push((format!("icmp-error-{i}-{j}"), Record::default().frame(&spec.build(&h.flows)).0));
        }
    }
    // The single frames of the worker tests: ARP and ND for the gateway's addresses, a ping,
    // VLAN tags, IPv6 extension headers, a full transmit ring.
    let client = End { mac: frames::CLIENT_MAC, ip: frames::CLIENT.into(), port: 40_100 };
    let vip = End { mac: frames::GW_MAC, ip: frames::VIP.into(), port: 80 };
    let syn = frames::tcp(client, vip, SYN, 100, 0, b"");
    let singles: Vec<(&str, Vec<u8>)> = vec![
        ("arp-request", frames::arp(1, frames::CLIENT_MAC, frames::CLIENT, [0; 6], frames::VIP, [0xff; 6])),
        (
            "arp-reply",
            frames::arp(
                2,
                frames::backend_mac(9),
                frames::be(9),
                frames::GW_MAC,
                frames::NODE,
                frames::GW_MAC,
            ),
        ),
        (
            "nd-solicit",
            FrameSpec::Nd {
                vlan: frames::Vlan::None,
                ty: frames::NdType::NeighborSolicit,
                sender_mac: frames::MacSel::Client,
                sender: frames::Host::Known(0),
                target: frames::Host::Known(2),
                hop_limit: 255,
                flags: 0,
                source_ll: true,
                multicast: true,
                options: vec![],
            }
            .build(&h.flows),
        ),
        ("ping", frames::icmp(client, End { port: 0, ..vip }, 64, 8, 0, [0, 1, 0, 1], b"ping")),
        ("syn", syn.clone()),
        ("syn-ttl-1", {
            let spec = FrameSpec::Ip {
                v6: false,
                vlan: frames::Vlan::Dot1q(100),
                src_mac: frames::MacSel::Client,
                dst_mac: frames::MacSel::Gateway,
                src: frames::Host::Known(0),
                dst: frames::Host::Known(4),
                ttl: 1,
                exts: vec![],
                l4: frames::L4::Tcp {
                    sport: frames::PortSel::Any(40_200),
                    dport: frames::PortSel::Known(0),
                    flags: SYN,
                    seq: 1,
                    ack: 0,
                },
                payload: vec![],
            };
            spec.build(&h.flows)
        }),
        ("v6-ext-headers", {
            let spec = FrameSpec::Flow {
                flow: 8,
                dir: frames::Dir::ClientToFrontend,
                vlan: frames::Vlan::QinQ(10, 20),
                ttl: 64,
                exts: Vec::new(),
                flags: ACK,
                seq: 101,
                ack: 5001,
                payload: b"x".to_vec(),
            };
            spec.build(&h.flows)
        }),
        ("garbage", vec![0u8; 20]),
    ];
    for (name, f) in singles {
        out.push((name.into(), Record::default().frame(&f).0));
    }
    out.push(("full-ring".into(), Record::default().tx_ring(1).frame(&syn).frame(&syn).frame(&syn).0));
    // Structured records: a few byte strings for `arbitrary` to read frames from.
    for (i, bytes) in [
        &b"\x01\x00\x03\x02\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00"[..],
        &[0x02; 48],
        &[0x03; 64],
        &[0x04; 64],
    ]
    .into_iter()
    .enumerate()
    {
        out.push((format!("spec-{i}"), Record::default().spec(bytes).spec(bytes).batch().0));
    }
    // Connections opened through SYN cookies: an ACK alone (the backend never answers), an ACK
    // carrying data the backend never answers (held to the end of the run: the crash the frames
    // target found in its own harness), an ACK whose backend answers, an ACK carrying data whose
    // backend answers, time passing after each.
    let ack = |opener: u8, port: u8, answer: bool, data: &[u8]| {
        let mut b = vec![opener, port, 0x40, 1, 2, 3, 4, if answer { 7 } else { 3 }, 9, 9, 9, 9];
        b.extend_from_slice(data);
        b
    };
    out.push((
        "cookie-acks".into(),
        Record::default()
            .cookie_ack(&ack(0, 1, false, b""))
            .cookie_ack(&ack(2, 4, false, b"held to the end"))
            .cookie_ack(&ack(1, 2, true, b""))
            .cookie_ack(&ack(4, 3, true, b"GET / HTTP/1.1\r\n\r\n"))
            .batch()
            .wait_ms(600)
            .batch()
            .0,
    ));
    out
}

// ---- images ---------------------------------------------------------------------------------

fn images() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = frames::tables()
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("worker-table-{i}"), sluice_model::image::encode(t)))
        .collect();
    out.push(("small".into(), crate::table_file::small_image(7)));
    out.push(("shared-maglev".into(), shared_maglev_image(100, 4099)));
    for (name, loaded) in fixture_stores() {
        let compiled = sluice_control::compile::compile(
            &loaded.store,
            &compile_config(),
            sluice_model::service::Generation(1),
        );
        if let Ok(t) = sluice_model::service::ServiceTable::build(&compiled.spec) {
            out.push((format!("control-{name}"), sluice_model::image::encode(&t)));
        }
    }
    out
}

/// A valid image of `services` services (one backend, one frontend each, Maglev tables of
/// `m` slots) in which every service names the *same* eligible list and Maglev array — the
/// first service's — and the u16 pool holds that one array only. The decoder accepts it and
/// copies the array once per service: `services` × 2`m` bytes held for an image of about
/// 2`m` + 140 × `services` bytes. (Today's decoder; the image target's bound catches it.)
pub fn shared_maglev_image(services: usize, m: u32) -> Vec<u8> {
    use sluice_model::Addr;
    use sluice_model::image::layout::{header, service};
    use sluice_model::service::*;
    let spec = TableSpec {
        generation: Generation(1),
        node_addrs: vec![Addr::from_v4([198, 18, 0, 1])],
        maglev_size: MaglevSize::Fixed(m),
        l7: Default::default(),
        services: (0..services)
            .map(|i| ServiceSpec {
                name: format!("s{i}"),
                frontends: vec![ServiceKey {
                    frontend: Frontend::Address(Addr::from_v4([198, 19, (i >> 8) as u8, i as u8])),
                    port: 80,
                    protocol: Protocol::Tcp,
                }],
                backends: vec![BackendSpec {
                    addr: Addr::from_v4([198, 18, 1, 1]),
                    port: 8080,
                    weight: 1,
                    conditions: Conditions::READY,
                }],
                scheduler: Scheduler::Maglev,
                affinity: None,
                nat: NatMode::Dnat,
                snat: vec![],
            })
            .collect(),
    };
    let t = ServiceTable::build(&spec).unwrap_or_else(|e| panic!("{e}"));
    let mut b = sluice_model::image::encode(&t);
    let h = |b: &[u8], f: sluice_model::image::layout::Field<u32>| f.read(&b[..header::SIZE]) as usize;
    // The first service's eligible list [0] and its array; everything after them moves down.
    let (pool_at, keep) = (h(&b, header::U16_POOL_AT), 1 + m as usize);
    let delta = 2 * (h(&b, header::U16_POOL_LEN) - keep);
    let services_at = h(&b, header::SERVICES_AT);
    for i in 0..services {
        let rec = &mut b[services_at + i * service::SIZE..][..service::SIZE];
        service::ELIGIBLE_AT.write(rec, 0);
        service::MAGLEV_AT.write(rec, 1);
    }
    header::U16_POOL_LEN.write(&mut b[..header::SIZE], keep as u32);
    // Every region after the pool: the addresses, the names, each L7 region and the L7 bytes.
    let after = [header::ADDR_POOL_AT, header::NAMES_AT, header::L7_BYTES_AT]
        .into_iter()
        .chain(sluice_model::image::layout::L7_REGIONS.iter().map(|r| r.2));
    for f in after {
        let v = h(&b, f);
        if v > pool_at {
            f.write(&mut b[..header::SIZE], (v - delta) as u32);
        }
    }
    let cut = pool_at + 2 * keep;
    b.drain(cut..cut + delta);
    b
}

/// The control configuration the seeds and the `manifests` target compile with.
pub fn compile_config() -> sluice_control::compile::Config {
    sluice_control::compile::Config {
        node_name: Some("node-a".into()),
        node_addrs: vec![[198, 18, 0, 1].into(), "2001:db8::1".parse().unwrap_or_else(|_| unreachable!())],
        snat: vec![],
        load_balancer_class: None,
        // External IPs from the examples' and fixtures' ranges are served, others refused:
        // both paths get fuzzed.
        external_ip_ranges: ["198.19.0.0/16", "2001:db8:19::/48"]
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect(),
        // ingress-nginx's classes too, so its dialect and annotations are fuzzed.
        ingress_nginx_class: true,
    }
}

/// Decoding an image holds at most `FACTOR` × its size, plus `SLACK` bytes.
pub const FACTOR: usize = 16;
pub const SLACK: usize = 64 * 1024;

/// Checks the image decoder's allocation bound: `held` bytes at the peak, for an image of `len`
/// bytes. A violation is a crash (the decoder charges every claim on its pools before it
/// allocates; see `fuzz/README.md`).
pub fn image_bound(len: usize, held: usize) {
    assert!(
        held <= FACTOR * len + SLACK,
        "decoding an image of {len} bytes held {held} bytes, more than {FACTOR} × its size + {SLACK}"
    );
}

// ---- table files ----------------------------------------------------------------------------

fn table_files() -> Vec<(String, Vec<u8>)> {
    let base = crate::table_file::base_file();
    // A raw file (mode 0): the start of the control block only (a whole file as a seed would
    // make libFuzzer's inputs 100 KiB long).
    let mut raw = vec![0u8];
    raw.extend_from_slice(&base[..256]);
    vec![
        // As written: open, refresh, read.
        ("as-written".into(), vec![1, 1]),
        // The payload damaged then made consistent: it reaches the decoder.
        ("damaged-payload".into(), vec![1, 0, 0x80, 0x40, 4, 0xff, 0xff, 0xff, 0xff, 3, 1, 1]),
        // Reopened between refreshes; the slot count raised under the reader.
        ("reopen".into(), vec![1, 1, 2, 0, 12, 0, 1, 8, 3, 2, 1]),
        // The file cut by a slot.
        ("cut".into(), vec![9, 1]),
        ("raw".into(), raw),
    ]
}

// ---- manifests ------------------------------------------------------------------------------

/// Every manifest fixture of control's tests and every example, with the store each loads to.
fn fixture_stores() -> Vec<(String, sluice_control::load::Loaded)> {
    let mut out = Vec::new();
    for (name, text) in manifest_files() {
        let mut loaded = sluice_control::load::Loaded::default();
        sluice_control::load::load_str(Path::new(&name), &String::from_utf8_lossy(&text), &mut loaded);
        out.push((name, loaded));
    }
    out
}

fn manifest_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in ["control/tests/fixtures", "deploy/examples"] {
        collect(&root().join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let name = p.strip_prefix(root()).ok()?.to_string_lossy().replace('/', "_");
            Some((name, std::fs::read(&p).ok()?))
        })
        // Large files are not good seeds: mutations of them are slow.
        .filter(|(_, b)| b.len() <= 16 * 1024)
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
}

fn manifests() -> Vec<(String, Vec<u8>)> {
    manifest_files()
}

// ---- netlink --------------------------------------------------------------------------------

/// A netlink message (as in `sluice_xsk::netlink`'s tests).
fn nl_msg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

fn nl_attr(ty: u16, v: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(v);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

fn netlink() -> Vec<(String, Vec<u8>)> {
    const SEQ: u32 = 9;
    let (af_inet, af_inet6) = (2u8, 10u8);
    let ndmsg = |family: u8, ifindex: i32, ip: &[u8], mac: &[u8]| {
        let mut p = vec![family, 0, 0, 0];
        p.extend_from_slice(&ifindex.to_ne_bytes());
        p.extend_from_slice(&0x02u16.to_ne_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend(nl_attr(1, ip));
        p.extend(nl_attr(2, mac));
        nl_msg(28, SEQ, &p)
    };
    let rtmsg = |family: u8, len: u8, attrs: &[Vec<u8>]| {
        let mut p = vec![family, len, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
        attrs.iter().for_each(|a| p.extend_from_slice(a));
        nl_msg(24, SEQ, &p)
    };
    let six = |last: u8| {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
        a[15] = last;
        a
    };
    let oif = |i: u32| nl_attr(4, &i.to_ne_bytes());
    let done = nl_msg(3, SEQ, &[0; 4]);
    let seq = SEQ.to_ne_bytes().to_vec();
    let neighbours = [
        ndmsg(af_inet, 2, &[198, 18, 0, 254], &[2, 0, 0, 0, 0, 0xfe]),
        ndmsg(af_inet6, 3, &six(2), &[2, 0, 0, 0, 0, 0xc1]),
        done.clone(),
    ]
    .concat();
    let routes = [
        rtmsg(af_inet, 24, &[nl_attr(1, &[198, 18, 0, 0]), oif(2)]),
        rtmsg(af_inet, 0, &[nl_attr(5, &[198, 18, 0, 254]), oif(2)]),
        rtmsg(af_inet6, 64, &[nl_attr(1, &six(0)), oif(3)]),
        rtmsg(af_inet6, 0, &[nl_attr(5, &six(0xfe)), oif(3), nl_attr(15, &254u32.to_ne_bytes())]),
        done,
    ]
    .concat();
    let error = nl_msg(2, SEQ, &(-1i32).to_ne_bytes());
    vec![
        ("neighbours".into(), [seq.clone(), neighbours.clone()].concat()),
        ("routes".into(), [seq.clone(), routes.clone()].concat()),
        ("both".into(), [seq.clone(), routes, neighbours].concat()),
        ("error".into(), [seq, error].concat()),
    ]
}

// ---- h1 -------------------------------------------------------------------------------------

/// HTTP/1.1 requests in the shapes of `gateway/l7/tests/h1_fixtures.rs`: each framing, the
/// smuggling cases, pipelined requests; each after a read-size byte (`fuzz_targets/h1.rs`).
/// HTTP/2 conversations after the preface: SETTINGS, requests (HPACK-encoded heads, with and
/// without CONTINUATION), bodies, trailers, PING, WINDOW_UPDATE, RST_STREAM, GOAWAY, each with
/// the step byte first.
fn h2() -> Vec<(String, Vec<u8>)> {
    use sluice_l7::h2::frame;
    use sluice_l7::h2::hpack::{Encoder, Field};
    use sluice_l7::h2::{ErrorCode, StreamId};
    let field = |n: &'static str, v: &'static str| Field {
        name: n.as_bytes(),
        value: v.as_bytes(),
        never_index: false,
    };
    let head = |enc: &mut Encoder, method: &'static str, path: &'static str| {
        let mut block = Vec::new();
        enc.encode(
            [
                field(":method", method),
                field(":scheme", "https"),
                field(":authority", "a.example"),
                field(":path", path),
                field("x-a", "1"),
            ],
            &mut block,
        );
        block
    };
    let mut out = Vec::new();
    let mut enc = Encoder::new(4096);
    let mut get = Vec::new();
    frame::write_settings(&mut get, &[(3, 100), (4, 65_535)]);
    let b = head(&mut enc, "GET", "/");
    frame::write_headers(&mut get, StreamId(1), &b, true, true);
    frame::write_settings_ack(&mut get);
    frame::write_ping(&mut get, false, *b"12345678");
    out.push(("get".to_owned(), get));
    let mut enc = Encoder::new(4096);
    let mut post = Vec::new();
    frame::write_settings(&mut post, &[]);
    let b = head(&mut enc, "POST", "/up");
    let (a, rest) = b.split_at(b.len() / 2);
    frame::write_headers(&mut post, StreamId(1), a, false, false);
    frame::write_continuation(&mut post, StreamId(1), rest, true);
    frame::write_data(&mut post, StreamId(1), b"hello", false);
    frame::write_window_update(&mut post, StreamId(0), 1000);
    let mut t = Vec::new();
    enc.encode([field("grpc-status", "0")], &mut t);
    frame::write_headers(&mut post, StreamId(1), &t, true, true);
    let b = head(&mut enc, "GET", "/b");
    frame::write_headers(&mut post, StreamId(3), &b, false, true);
    frame::write_rst_stream(&mut post, StreamId(3), ErrorCode::CANCEL);
    frame::write_goaway(&mut post, StreamId(0), ErrorCode::NO_ERROR, b"bye");
    out.push(("post".to_owned(), post));
    let mut seeds = Vec::new();
    for (name, bytes) in out {
        for step in [0u8, 8, 63] {
            let mut seed = vec![step];
            seed.extend_from_slice(&bytes);
            seeds.push((format!("{name}-{step}"), seed));
        }
    }
    seeds
}

fn h1() -> Vec<(String, Vec<u8>)> {
    let requests: [(&str, &[u8]); 12] = [
        ("get", b"GET /a/b?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\n\r\n"),
        ("content-length", b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
        (
            "chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"q\"\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        ),
        ("te-and-cl", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        ("two-cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        ("te-gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
        ("space-colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("absolute", b"GET http://[2001:db8::1]:8080/x HTTP/1.1\r\nHost: b\r\n\r\n"),
        ("http10", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        ("upgrade", b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X\r\nUpgrade: websocket\r\nX: 1\r\n\r\n"),
        (
            "pipelined",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    let mut out = Vec::new();
    for (name, bytes) in requests {
        for step in [0u8, 6, 63] {
            let mut seed = vec![step];
            seed.extend_from_slice(bytes);
            out.push((format!("{name}-{step}"), seed));
        }
    }
    out
}

// ---- htpasswd -------------------------------------------------------------------------------

/// htpasswd files with each kind of hash (those of `sluice-l7`'s auth tests, made with
/// `htpasswd` and `openssl passwd`; the password is `secret` unless said), then a NUL and an
/// `Authorization` value: right, wrong, malformed.
fn htpasswd() -> Vec<(String, Vec<u8>)> {
    let file = "# users\n\
                alice:$2y$04$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy\n\
                carol:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n\
                dave:$apr1$xyzSALT1$.eWsQnZemtc7siKtawOwr/\n\
                erin:$1$abc$iCQ2D3nhptRYi27fDYv2s1\n\
                sam:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\
                alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\
                plain:secret\n\
                \n";
    let headers: [(&str, &str); 7] = [
        // alice:secret (bcrypt cost 4), carol:pw, dave:secret, erin:secret, sam:secret.
        ("bcrypt", "Basic YWxpY2U6c2VjcmV0"),
        ("sha1", "Basic Y2Fyb2w6cHc="),
        ("apr1", "Basic ZGF2ZTpzZWNyZXQ="),
        ("md5", "Basic ZXJpbjpzZWNyZXQ="),
        ("wrong", "Basic c2FtOm5vcGU="),
        ("unknown", "Basic bm9ib2R5OnNlY3JldA=="),
        ("malformed", "Bearer abc"),
    ];
    headers
        .iter()
        .map(|(name, h)| {
            let mut seed = file.as_bytes().to_vec();
            seed.push(0);
            seed.extend_from_slice(h.as_bytes());
            (name.to_string(), seed)
        })
        .collect()
}

// ---- annotations ----------------------------------------------------------------------------

/// Annotations as `deploy/examples` and control's tests write them, good values and bad, one
/// Ingress per seed (`name=value` lines; `fuzz_targets/annotations.rs`).
fn annotations() -> Vec<(String, Vec<u8>)> {
    let sets: [(&str, &[&str]); 8] = [
        ("rewrite", &["rewrite-target=/$2", "use-regex=true", "x-forwarded-prefix=/api", "app-root=/app"]),
        (
            "redirects",
            &[
                "ssl-redirect=false",
                "force-ssl-redirect=true",
                "permanent-redirect=https://b.example/x",
                "permanent-redirect-code=308",
                "temporal-redirect=/t",
                "preserve-trailing-slash=true",
            ],
        ),
        (
            "auth",
            &[
                "auth-type=basic",
                "auth-secret=shop/users",
                "auth-secret-type=auth-file",
                "auth-realm=Shop staff",
            ],
        ),
        (
            "limits",
            &[
                "limit-rps=5",
                "limit-rpm=300",
                "limit-connections=2",
                "limit-burst-multiplier=3",
                "limit-whitelist=198.18.0.0/15, 2001:db8::/32",
                "proxy-body-size=8m",
                "proxy-read-timeout=120",
            ],
        ),
        (
            "canary",
            &[
                "canary=true",
                "canary-by-header=X-Canary",
                "canary-by-header-value=yes",
                "canary-by-header-pattern=^(a|b)$",
                "canary-by-cookie=c",
                "canary-weight=30",
                "canary-weight-total=1000",
            ],
        ),
        (
            "affinity",
            &[
                "affinity=cookie",
                "affinity-mode=persistent",
                "session-cookie-name=ROUTE",
                "session-cookie-path=/app",
                "session-cookie-max-age=3600",
                "session-cookie-samesite=Lax",
                "upstream-hash-by=$request_uri$host",
            ],
        ),
        (
            "cors",
            &[
                "enable-cors=true",
                "cors-allow-origin=https://a.example, https://*.b.example",
                "cors-allow-methods=GET, POST",
                "cors-allow-headers=X-A",
                "cors-allow-credentials=false",
                "cors-max-age=600",
                "upstream-vhost=in.example",
                "backend-protocol=GRPCS",
            ],
        ),
        (
            "bad",
            &[
                "proxy-body-size=1t",
                "limit-rps=x",
                "whitelist-source-range=10.0.0.0/33,nope",
                "rewrite-target=/a\r\nX: y",
                "configuration-snippet=more_set_headers \"X: y\";",
                "auth-url=http://auth/",
                "permanent-redirect-code=999",
                "session-cookie-name=a b",
            ],
        ),
    ];
    sets.iter().map(|(name, lines)| (name.to_string(), lines.join("\n").into_bytes())).collect()
}

// ---- hpack ----------------------------------------------------------------------------------

/// Header blocks, each after its length byte (`fuzz_targets/hpack.rs`): RFC 7541's examples of
/// requests without and with Huffman coding (C.3, C.4: three blocks on one table each), and
/// blocks Sluice's encoder writes for requests and responses.
fn hpack() -> Vec<(String, Vec<u8>)> {
    use sluice_l7::h2::hpack::{Encoder, Field};
    let unhex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    };
    let chain = |blocks: &[Vec<u8>]| -> Vec<u8> {
        let mut out = Vec::new();
        for b in blocks {
            out.push(u8::try_from(b.len()).unwrap());
            out.extend_from_slice(b);
        }
        out
    };
    let c3 = [
        unhex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        unhex("8286 84be 5808 6e6f 2d63 6163 6865"),
        unhex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
    ];
    let c4 = [
        unhex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
        unhex("8286 84be 5886 a8eb 1064 9cbf"),
        unhex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
    ];
    let f = |n: &'static str, v: &'static str| Field::new(n.as_bytes(), v.as_bytes());
    let never = |n: &'static str, v: &'static str| Field { never_index: true, ..f(n, v) };
    let mut enc = Encoder::new(4096);
    let mut ours = Vec::new();
    for fields in [
        vec![
            f(":method", "GET"),
            f(":scheme", "https"),
            f(":authority", "a.example"),
            f(":path", "/"),
            never("authorization", "Basic YWxpY2U6c2VjcmV0"),
        ],
        vec![
            f(":status", "200"),
            f("content-type", "text/plain"),
            f("server", "sluice"),
            f("set-cookie", "ROUTE=abc; HttpOnly"),
        ],
        vec![
            f(":method", "POST"),
            f(":scheme", "https"),
            f(":authority", "a.example"),
            f(":path", "/up"),
            f("x-a", "1"),
            f("x-a", "2"),
        ],
    ] {
        let mut b = Vec::new();
        enc.encode(fields, &mut b);
        ours.push(b);
    }
    vec![
        ("rfc7541-c3".to_owned(), chain(&c3)),
        ("rfc7541-c4".to_owned(), chain(&c4)),
        ("sluice".to_owned(), chain(&ours)),
    ]
}

// ---- tls_hello ------------------------------------------------------------------------------

/// ClientHellos as rustls writes them — TLS 1.3 and 1.2, ALPN h2 and http/1.1, a server name
/// the resolver has precisely, one its wildcard covers, one it has not, none — each after a
/// read-size byte (`fuzz_targets/tls_hello.rs`).
fn tls_hello() -> Vec<(String, Vec<u8>)> {
    use std::sync::Arc;
    let mut seeds = Vec::new();
    for (vname, versions) in [
        ("tls13", &[&rustls::version::TLS13][..]),
        ("tls12", &[&rustls::version::TLS12][..]),
        ("both", &[&rustls::version::TLS13, &rustls::version::TLS12][..]),
    ] {
        for sni in [Some("shop.example.com"), Some("a.example.com"), Some("other.org"), None] {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config.enable_sni = sni.is_some();
            let name =
                rustls::pki_types::ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned()).unwrap();
            let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            let mut hello = vec![7u8];
            while client.wants_write() {
                client.write_tls(&mut hello).unwrap();
            }
            seeds.push((format!("{vname}-{}", sni.unwrap_or("none")), hello));
        }
    }
    seeds
}
