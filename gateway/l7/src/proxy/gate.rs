//! What a route's policy (ingress-nginx's annotations, `sluice_model::policy`) decides before a
//! request is proxied, in ingress-nginx's order: the location denied (503), the client's address
//! refused (403), the redirect to HTTPS (308), a configured redirect, the app root (302), a CORS
//! preflight (204); and the fields a proxied response gains (HSTS, CORS, custom headers).
//!
//! Header lines are written into two buffers of the connection, reused from one request to the
//! next (no allocation once they have grown to the longest lines seen): `extra` for a response
//! Sluice answers itself, `resp_extra` for the response relayed from the upstream.
//!
//! Hot path: yes, only for routes whose policy asks for something; a default policy costs a
//! handful of comparisons.

use std::net::SocketAddr;

use sluice_model::policy::{HSTS_VALUE, HashKey, HashPart, Policy};

use crate::policy::cookie;
use crate::policy::cors::{self, CorsRequest};
use crate::policy::{Sip, SipKey, hash_ip};

use super::upstream::Generation;
use crate::h1::RequestHead;
use crate::route::{MAX_HOST_BYTES, RequestHost, request_host};

/// The field value of `name` in the request, if present (the first).
pub(super) fn field<'h>(head: &'h RequestHead<'_>, name: &str) -> Option<&'h [u8]> {
    head.fields().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value)
}

/// The rewrite phase of a route's policy: whether the request is answered by Sluice instead of
/// proxied (app root, denied location, redirect, CORS preflight, HTTPS redirect), the status with
/// its extra header lines in `extra`; `resp_extra` gets the lines a proxied response gains. The
/// caller then applies the limits, the source ranges and basic auth.
pub(super) fn gate(
    policy: &Policy,
    generation: &Generation,
    head: &RequestHead<'_>,
    _peer: SocketAddr,
    https: bool,
    extra: &mut String,
    resp_extra: &mut String,
) -> Option<u16> {
    // The host and its certificate matter only to a route that redirects to HTTPS: a route
    // that does not (Sluice's class by default) costs no host lookup here.
    let redirects = policy.ssl_redirect || policy.force_ssl_redirect;
    let mut host_buf = [0u8; MAX_HOST_BYTES];
    let host = match redirects.then(|| request_host(head.authority(), &mut host_buf)) {
        Some(RequestHost::Name(n)) => Some(n),
        _ => None,
    };
    let has_cert = host.is_some_and(|h| generation.has_certificate(h));
    // HSTS on HTTPS responses of a host with its own certificate, Sluice's answers included,
    // where the route redirects plain HTTP to HTTPS (ingress-nginx's default, and its HSTS
    // default, go together).
    if https && has_cert {
        for b in [&mut *extra, &mut *resp_extra] {
            b.push_str("Strict-Transport-Security: ");
            b.push_str(HSTS_VALUE);
            b.push_str("\r\n");
        }
    }
    for h in &policy.response_headers {
        for b in [&mut *extra, &mut *resp_extra] {
            push_field(b, &h.name, &h.value);
        }
    }
    // The server's rewrite phase: app-root.
    if let Some(root) = &policy.app_root
        && head.path() == "/"
    {
        push_field(extra, "Location", root);
        return Some(302);
    }
    // The location's rewrite directives: the denied location, the configured redirects.
    if policy.deny.is_some() {
        return Some(503);
    }
    if let Some(r) = &policy.redirect {
        push_field(extra, "Location", &r.location);
        return Some(r.code);
    }
    if let Some(status) = cors(policy, head, extra, resp_extra) {
        return Some(status);
    }
    // Then ingress-nginx's redirect to HTTPS (its Lua rewrite, last of the phase).
    if !https && (policy.force_ssl_redirect || (policy.ssl_redirect && has_cert)) {
        // `https://` + the host + the request URI (path and query), its trailing `/` dropped
        // unless `preserve-trailing-slash`, as ingress-nginx writes it.
        extra.push_str("Location: https://");
        match host {
            Some(h) => extra.push_str(h),
            None => extra.push_str(authority_host(head.authority())),
        }
        let start = extra.len();
        extra.push_str(head.path());
        if let Some(q) = head.query() {
            extra.push('?');
            extra.push_str(q);
        }
        if !policy.preserve_trailing_slash && extra.len() > start && extra.ends_with('/') {
            extra.pop();
        }
        extra.push_str("\r\n");
        return Some(308);
    }
    None
}

/// CORS (`policy::cors`, the one writer of its fields): the fields a response to an allowed
/// origin gets, and the 204 a preflight gets.
fn cors(policy: &Policy, head: &RequestHead<'_>, extra: &mut String, resp_extra: &mut String) -> Option<u16> {
    let c = policy.cors.as_ref()?;
    let request_method = field(head, "access-control-request-method");
    let mut buf = [0u8; 1024];
    let (preflight, n) = match cors::classify(c, head.method_str(), field(head, "origin"), request_method) {
        CorsRequest::None => return None,
        CorsRequest::Preflight { origin } => (true, cors::write_preflight_fields(c, origin, &mut buf)),
        CorsRequest::Simple { origin } => (false, cors::write_response_fields(c, origin, &mut buf)),
    };
    // Fields longer than the buffer (control bounds each value to 4 KiB) are left out.
    let lines = n.ok().and_then(|n| std::str::from_utf8(&buf[..n]).ok()).unwrap_or("");
    if preflight {
        extra.push_str(lines);
        return Some(204);
    }
    extra.push_str(lines);
    resp_extra.push_str(lines);
    None
}

/// The host part of an authority that is no name (an address literal, or odd).
fn authority_host(a: &str) -> &str {
    if a.starts_with('[') {
        return a.find(']').map_or(a, |e| &a[..=e]);
    }
    a.rsplit_once(':').map_or(a, |(h, _)| h)
}

fn push_field(b: &mut String, name: &str, value: &str) {
    b.push_str(name);
    b.push_str(": ");
    b.push_str(value);
    b.push_str("\r\n");
}

/// The hash of an `upstream-hash-by` key for a request: its parts fed to one hasher (no string
/// is built). A variable the request lacks adds nothing.
pub(super) fn hash_key(key: &HashKey, head: &RequestHead<'_>, peer: SocketAddr) -> u64 {
    const K: SipKey = SipKey::new(*b"sluice hash key!");
    let mut h = Sip::new(&K);
    let arg = |name: &str| {
        head.query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    };
    for part in &key.parts {
        match part {
            HashPart::Literal(s) => h.write_field(s.as_bytes()),
            HashPart::RequestUri => h.write_field(head.target().as_bytes()),
            HashPart::Uri => h.write_field(head.path().as_bytes()),
            HashPart::Args => h.write_field(head.query().unwrap_or("").as_bytes()),
            HashPart::Host => h.write_field(head.authority().as_bytes()),
            HashPart::RemoteAddr => hash_ip(&mut h, peer.ip()),
            HashPart::Header(n) => h.write_field(field(head, n).unwrap_or(b"")),
            HashPart::Cookie(n) => h.write_field(
                cookie::find(
                    head.fields().filter(|f| f.name.eq_ignore_ascii_case("cookie")).map(|f| f.value),
                    n,
                )
                .unwrap_or(b""),
            ),
            HashPart::Arg(n) => h.write_field(arg(n).unwrap_or("").as_bytes()),
        }
    }
    h.finish()
}

/// Whether a client field is left out of the request sent upstream: replaced by the policy's
/// (`upstream-vhost`, `x-forwarded-prefix`, `proxy-set-headers`), or consumed by Sluice (the
/// credentials of basic auth).
pub(super) fn drops(policy: &Policy, name: &str) -> bool {
    (policy.basic_auth.is_some() && name.eq_ignore_ascii_case("authorization"))
        || (policy.upstream_vhost.is_some() && name.eq_ignore_ascii_case("host"))
        || (policy.forwarded_prefix.is_some() && name.eq_ignore_ascii_case("x-forwarded-prefix"))
        || policy.request_headers.iter().any(|h| h.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_hosts() {
        assert_eq!(authority_host("[2001:db8::1]:8080"), "[2001:db8::1]");
        assert_eq!(authority_host("192.0.2.1:80"), "192.0.2.1");
    }
}
