//! The protocol side of a client connection: HTTP/1.1 ([`Conn`]) or HTTP/2 ([`H2Conn`]),
//! decided by the connection's first bytes — the HTTP/2 connection preface (RFC 9113 §3.4:
//! what a client sends after ALPN `h2`, or with prior knowledge on a plain listener) or
//! anything else. One interface for the driver: the client side as [`Conn`]'s, the upstream
//! side per lane (an HTTP/1.1 connection has one lane, 0).

use std::net::SocketAddr;

use sluice_l7::proxy::{Action, Conn, Context, H2Conn, PREFACE, UpstreamError};
use sluice_model::policy::BackendProtocol;

/// A client connection's protocol state.
#[expect(
    clippy::large_enum_variant,
    reason = "an HTTP/1.1 connection is the common case, held inline; the client slot is boxed"
)]
pub(crate) enum Front {
    /// The first bytes, until they show the HTTP/2 preface or not.
    Sniff {
        buf: [u8; PREFACE.len()],
        len: usize,
        since_ns: u64,
        peer: SocketAddr,
        port: u16,
        https: bool,
    },
    H1(Conn),
    H2(Box<H2Conn>),
    /// Closed before a protocol was known.
    Gone,
}

impl Front {
    /// A connection whose protocol its first bytes will tell.
    pub(crate) fn new(peer: SocketAddr, port: u16, https: bool, now_ns: u64) -> Front {
        Front::Sniff { buf: [0; PREFACE.len()], len: 0, since_ns: now_ns, peer, port, https }
    }

    pub(crate) fn client_read_buf(&mut self) -> &mut [u8] {
        match self {
            Front::Sniff { buf, len, .. } => &mut buf[*len..],
            Front::H1(c) => c.client_read_buf(),
            Front::H2(c) => c.client_read_buf(),
            Front::Gone => &mut [],
        }
    }

    pub(crate) fn client_read(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        match self {
            Front::Sniff { buf, len, peer, port, https, .. } => {
                *len += n;
                let (peer, port, https, seen) = (*peer, *port, *https, *len);
                let bytes = *buf;
                if bytes[..seen] != PREFACE[..seen] {
                    let mut conn = Conn::new(ctx, peer, port, https, now_ns);
                    feed(conn.client_read_buf(), &bytes[..seen]);
                    conn.client_read(ctx, seen, now_ns);
                    *self = Front::H1(conn);
                } else if seen == PREFACE.len() {
                    let mut conn = Box::new(H2Conn::new(ctx, peer, port, https, now_ns));
                    feed(conn.client_read_buf(), &bytes);
                    conn.client_read(ctx, seen, now_ns);
                    *self = Front::H2(conn);
                }
            }
            Front::H1(c) => c.client_read(ctx, n, now_ns),
            Front::H2(c) => c.client_read(ctx, n, now_ns),
            Front::Gone => {}
        }
    }

    pub(crate) fn client_eof(&mut self, ctx: &mut Context, now_ns: u64) {
        match self {
            Front::Sniff { .. } => *self = Front::Gone,
            Front::H1(c) => c.client_eof(ctx, now_ns),
            Front::H2(c) => c.client_eof(ctx, now_ns),
            Front::Gone => {}
        }
    }

    pub(crate) fn client_failed(&mut self, ctx: &mut Context, now_ns: u64) {
        match self {
            Front::Sniff { .. } => *self = Front::Gone,
            Front::H1(c) => c.client_failed(ctx, now_ns),
            Front::H2(c) => c.client_failed(ctx, now_ns),
            Front::Gone => {}
        }
    }

    pub(crate) fn client_write_buf(&self) -> &[u8] {
        match self {
            Front::H1(c) => c.client_write_buf(),
            Front::H2(c) => c.client_write_buf(),
            Front::Sniff { .. } | Front::Gone => &[],
        }
    }

    pub(crate) fn client_wrote(&mut self, ctx: &mut Context, n: usize, now_ns: u64) {
        match self {
            Front::H1(c) => c.client_wrote(ctx, n, now_ns),
            Front::H2(c) => c.client_wrote(ctx, n, now_ns),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }

    /// The next action, and the lane it is for.
    pub(crate) fn poll_action(&mut self) -> Option<(usize, Action)> {
        match self {
            Front::H1(c) => c.poll_action().map(|a| (0, a)),
            Front::H2(c) => c.poll_action(),
            Front::Sniff { .. } | Front::Gone => None,
        }
    }

    pub(crate) fn tick(&mut self, ctx: &mut Context, now_ns: u64) {
        match self {
            Front::Sniff { since_ns, .. } => {
                if now_ns.saturating_sub(*since_ns) >= ctx.config().client_head_timeout_ns {
                    ctx.count_client_timeout();
                    *self = Front::Gone;
                }
            }
            Front::H1(c) => c.tick(ctx, now_ns),
            Front::H2(c) => c.tick(ctx, now_ns),
            Front::Gone => {}
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        match self {
            Front::Sniff { .. } => false,
            Front::H1(c) => c.is_finished(),
            Front::H2(c) => c.is_finished(),
            Front::Gone => true,
        }
    }

    pub(crate) fn shed_idle_buffers(&mut self) {
        match self {
            Front::H1(c) => c.shed_idle_buffers(),
            Front::H2(c) => c.shed_idle_buffers(),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }

    /// The `backend-protocol` of `lane`'s request: HTTP/2 or not, TLS or not.
    pub(crate) fn upstream_protocol(&self, lane: usize) -> Option<BackendProtocol> {
        match self {
            Front::H1(c) => c.upstream_protocol(),
            Front::H2(c) => c.upstream_protocol(lane),
            Front::Sniff { .. } | Front::Gone => None,
        }
    }

    pub(crate) fn upstream_read_buf(&mut self, lane: usize) -> &mut [u8] {
        match self {
            Front::H1(c) => c.upstream_read_buf(),
            Front::H2(c) => c.upstream_read_buf(lane),
            Front::Sniff { .. } | Front::Gone => &mut [],
        }
    }

    pub(crate) fn upstream_read(&mut self, ctx: &mut Context, lane: usize, n: usize, now_ns: u64) {
        match self {
            Front::H1(c) => c.upstream_read(ctx, n, now_ns),
            Front::H2(c) => c.upstream_read(ctx, lane, n, now_ns),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }

    pub(crate) fn upstream_write_buf(&self, lane: usize) -> &[u8] {
        match self {
            Front::H1(c) => c.upstream_write_buf(),
            Front::H2(c) => c.upstream_write_buf(lane),
            Front::Sniff { .. } | Front::Gone => &[],
        }
    }

    pub(crate) fn upstream_wrote(&mut self, ctx: &mut Context, lane: usize, n: usize, now_ns: u64) {
        match self {
            Front::H1(c) => c.upstream_wrote(ctx, n, now_ns),
            Front::H2(c) => c.upstream_wrote(ctx, lane, n, now_ns),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }

    pub(crate) fn upstream_connected(&mut self, ctx: &mut Context, lane: usize, reused: bool, now_ns: u64) {
        match self {
            Front::H1(c) => c.upstream_connected(ctx, reused, now_ns),
            Front::H2(c) => c.upstream_connected(ctx, lane, reused, now_ns),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }

    pub(crate) fn upstream_failed(
        &mut self,
        ctx: &mut Context,
        lane: usize,
        error: UpstreamError,
        now_ns: u64,
    ) {
        match self {
            Front::H1(c) => c.upstream_failed(ctx, error, now_ns),
            Front::H2(c) => c.upstream_failed(ctx, lane, error, now_ns),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }

    pub(crate) fn upstream_eof(&mut self, ctx: &mut Context, lane: usize, now_ns: u64) {
        match self {
            Front::H1(c) => c.upstream_eof(ctx, now_ns),
            Front::H2(c) => c.upstream_eof(ctx, lane, now_ns),
            Front::Sniff { .. } | Front::Gone => {}
        }
    }
}

/// Copies the sniffed bytes into a new connection's first read buffer (always room: every
/// input buffer holds a whole head or frame).
fn feed(dst: &mut [u8], bytes: &[u8]) {
    dst[..bytes.len()].copy_from_slice(bytes);
}
