//! Sluice's L7 stage, sans-IO: HTTP/1.1 request heads and body framing, HTTP/2 connections,
//! Ingress routing, the TLS configuration HTTPS is served with, and the HTTP/1.1 reverse proxy
//! built on them.
//!
//! Pure logic. No sockets, no clocks, no threads: bytes arrive as slices the caller read from
//! its connection, results come back as typed values and ranges of the caller's bytes, and the
//! caller decides what to write and when to close. That is what lets every framing and routing
//! rule be tested from byte literals, every input split at every byte, without a socket. What
//! routes are made from — Ingress rules in typed form, the merged route table — is the contract,
//! in `sluice_model::route`.
//!
//! - [`h1`]: HTTP/1.1 (RFC 9112): request heads parsed incrementally with `httparse` and checked
//!   against the request-smuggling rules, limits (414, 431), body framing and a streaming
//!   chunked decoder, hop-by-hop fields, which responses have a body.
//! - [`h2`]: HTTP/2 (RFC 9113) and HPACK (RFC 7541): frames, header compression and a
//!   connection state machine for both roles, with flow control and the flood limits (rapid
//!   reset, CONTINUATION, SETTINGS, PING, empty frames, HPACK bombs). The proxy serves HTTP/2
//!   clients with it ([`proxy::H2Conn`]) and reaches HTTP/2 upstreams ([`proxy::H2Upstream`]).
//! - [`route`]: Kubernetes Ingress matching over a compiled route table: hosts, paths,
//!   precedence and default backends, precomputed so that a request costs a few hash probes and
//!   no allocation.
//! - [`tls`]: a generation's certificates as a rustls `ServerConfig` (aws-lc-rs): SNI certificate
//!   choice, the default certificate, versions, suites, ALPN and session tickets shared by every
//!   worker and generation. It builds configuration; the `ServerConnection`s are the driver's.
//! - [`upstream_tls`]: the rustls `ClientConfig`s of `backend-protocol` HTTPS and GRPCS
//!   upstreams, with ingress-nginx's defaults (no certificate verification, handshake
//!   signatures verified; no SNI; ALPN by protocol; session resumption). The
//!   `ClientConnection`s are the driver's.
//! - [`proxy`]: the reverse proxy of one client connection ([`proxy::Conn`]): routing per
//!   request, endpoint choice, head rewriting, body streaming with backpressure, local statuses,
//!   retries, timers; and the per-worker bookkeeping it shares ([`proxy::Context`], the
//!   upstream [`proxy::Pool`], endpoint [`proxy::Health`]). HTTP/2 clients drive one such core
//!   per stream ([`proxy::H2Conn`]); HTTP/2 upstreams sit behind a converter
//!   ([`proxy::H2Upstream`]). Its sockets are driven by the `sluice-proxy` crate.
//! - [`policy`]: the enforcement primitives of ingress-nginx's annotations the proxy calls per
//!   request — Basic authentication, request limits shared by every worker, canary choice,
//!   ingress-nginx's path dialect and `rewrite-target`, CORS, session-affinity cookies.
//!
//! Hot path: yes ([`h1::HeadParser::parse`], [`h1::BodyDecoder::decode`], [`h2::Conn`]'s methods,
//! [`route::Router::route`], [`tls::CertStore::pick`], [`proxy::Conn`]'s methods); none of them
//! allocates. No `unsafe`.
#![forbid(unsafe_code)]

pub mod h1;
pub mod h2;
pub mod policy;
pub mod proxy;
pub mod route;
mod storage;
pub mod tls;
pub mod upstream_tls;
