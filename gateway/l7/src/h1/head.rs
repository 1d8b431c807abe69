//! Request heads: the end found incrementally, the head parsed once, then checked.

use std::mem::MaybeUninit;
use std::net::Ipv6Addr;

use super::fields::{HOP_BY_HOP, is_fixed_hop_by_hop, is_tchar, tokens, trim_ows};
use super::{Method, Reject, Version};

/// The most fields a head may have whatever [`Limits::max_fields`] says: the size of the
/// parser's stack array of field slots.
pub const MAX_FIELDS: usize = 256;

/// Limits on a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest head, request line and empty line included (431 beyond).
    pub max_head_bytes: usize,
    /// The longest request-target (414 beyond).
    pub max_uri_bytes: usize,
    /// The most fields (431 beyond); at most [`MAX_FIELDS`].
    pub max_fields: usize,
}

impl Limits {
    /// nginx's effective defaults: a request line of 8 KiB, 32 KiB of head; hyper's 100 fields.
    pub const DEFAULT: Limits =
        Limits { max_head_bytes: 32 * 1024, max_uri_bytes: 8 * 1024, max_fields: 100 };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// How a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No Content-Length, no Transfer-Encoding: no body.
    None,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// The chunked transfer coding, to its last chunk and trailer section.
    Chunked,
}

/// The form of a request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`.
    Origin,
    /// `http://authority/path?query`: its authority overrides Host.
    Absolute,
    /// `host:port`, with CONNECT.
    Authority,
    /// `*`, with OPTIONS.
    Asterisk,
}

/// Where a field's name and value lie in the head.
#[derive(Debug, Clone, Copy)]
struct Span {
    name: (usize, usize),
    value: (usize, usize),
}

/// One field line of a head, as received (the value without surrounding whitespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name, as the client spelled it.
    pub name: &'a str,
    /// The value.
    pub value: &'a [u8],
}

/// Finds, parses and checks request heads, one after another, on one connection.
///
/// Give [`HeadParser::parse`] the connection's unconsumed bytes, from the first byte of the
/// request, after every read. Between calls the bytes already given must stay at the front of
/// the buffer (appending is fine); call [`HeadParser::reset`] if they do not. After a complete
/// head or a refusal the parser starts afresh by itself.
#[derive(Debug)]
pub struct HeadParser {
    limits: Limits,
    /// The first byte not scanned yet.
    scanned: usize,
    /// Where the request line begins (after the empty lines a client may send before it).
    start: Option<usize>,
    /// Where the request line ends (its LF).
    line_end: Option<usize>,
    /// The field index of the last complete head; allocated once.
    spans: Vec<Span>,
}

impl HeadParser {
    /// A parser with these limits ([`Limits::max_fields`] capped at [`MAX_FIELDS`]).
    pub fn new(limits: Limits) -> HeadParser {
        let limits = Limits { max_fields: limits.max_fields.min(MAX_FIELDS), ..limits };
        HeadParser {
            limits,
            scanned: 0,
            start: None,
            line_end: None,
            spans: Vec::with_capacity(limits.max_fields),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Forgets a partly scanned head.
    pub fn reset(&mut self) {
        self.scanned = 0;
        self.start = None;
        self.line_end = None;
    }

    /// Parses the head at the front of `buf`: `Ok(None)` until it is complete, then the head
    /// (its [`RequestHead::head_len`] bytes are the head; the body, or the next request, follows).
    /// Allocates nothing.
    pub fn parse<'a>(&'a mut self, buf: &'a [u8]) -> Result<Option<RequestHead<'a>>, Reject> {
        let end = self.find_end(buf);
        if !matches!(end, Ok(None)) {
            self.reset();
        }
        match end? {
            None => Ok(None),
            Some(end) => self.check(&buf[..end]).map(Some),
        }
    }

    /// Scans for the empty line that ends the head, from where the last call stopped.
    fn find_end(&mut self, buf: &[u8]) -> Result<Option<usize>, Reject> {
        if self.scanned > buf.len() {
            // Not the bytes of the last call: start again.
            self.reset();
        }
        let max = self.limits.max_head_bytes;
        let mut i = self.scanned;
        let start = match self.start {
            Some(s) => s,
            // RFC 9112 §2.2: empty lines before the request line are ignored.
            None => loop {
                if i >= max {
                    return Err(Reject::HeadTooLarge);
                }
                match buf.get(i) {
                    None => {
                        self.scanned = i;
                        return Ok(None);
                    }
                    Some(b'\n') => i += 1,
                    Some(b'\r') => match buf.get(i + 1) {
                        None => {
                            self.scanned = i;
                            return Ok(None);
                        }
                        Some(b'\n') => i += 2,
                        Some(_) => return Err(Reject::BareCr),
                    },
                    Some(_) => {
                        self.start = Some(i);
                        break i;
                    }
                }
            },
        };
        while i < buf.len() {
            if i >= max {
                return Err(self.too_large(buf, start));
            }
            match buf[i] {
                b'\r' => match buf.get(i + 1) {
                    None => break,
                    Some(b'\n') => i += 1,
                    Some(_) => return Err(Reject::BareCr),
                },
                b'\n' => {
                    if self.line_end.is_none() {
                        self.line_end = Some(i);
                        if target_len(&buf[start..i]) > self.limits.max_uri_bytes {
                            return Err(Reject::UriTooLong);
                        }
                    }
                    // RFC 9112 §2.2 lets a recipient take a bare LF for a line end; httparse
                    // does, so the head ends at LF LF as well as at LF CR LF.
                    let end = match (buf.get(i + 1), buf.get(i + 2)) {
                        (None, _) | (Some(b'\r'), None) => break,
                        (Some(b'\n'), _) => i + 2,
                        (Some(b'\r'), Some(b'\n')) => i + 3,
                        (Some(b'\r'), Some(_)) => return Err(Reject::BareCr),
                        (Some(_), _) => {
                            i += 1;
                            continue;
                        }
                    };
                    return if end > max { Err(self.too_large(buf, start)) } else { Ok(Some(end)) };
                }
                _ => i += 1,
            }
        }
        self.scanned = i;
        if i >= max {
            return Err(self.too_large(buf, start));
        }
        Ok(None)
    }

    /// 414 when the request line is still open and its target already too long, else 431.
    fn too_large(&self, buf: &[u8], start: usize) -> Reject {
        let end = buf.len().min(self.limits.max_head_bytes);
        if self.line_end.is_none() && start < end && target_len(&buf[start..end]) > self.limits.max_uri_bytes
        {
            Reject::UriTooLong
        } else {
            Reject::HeadTooLarge
        }
    }

    /// Parses a complete head and checks it.
    fn check<'a>(&'a mut self, head: &'a [u8]) -> Result<RequestHead<'a>, Reject> {
        let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(head, &mut raw[..self.limits.max_fields]) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            // Cannot happen: the head ends with its empty line, and nothing can follow it.
            Ok(_) => return Err(Reject::RequestLine),
            Err(e) => return Err(classify(e, head)),
        }
        let version = if req.version == Some(1) { Version::Http11 } else { Version::Http10 };
        let method_str = req.method.unwrap_or_default();
        let method = Method::from_token(method_str);
        let target = req.path.unwrap_or_default();

        let mut hosts = 0usize;
        let mut host: &[u8] = b"";
        let mut content_length: Option<u64> = None;
        let mut content_length_error: Option<Reject> = None;
        let mut transfer_encoding = false;
        let (mut chunked, mut last_is_chunked, mut other_coding) = (0usize, false, false);
        let (mut close, mut keep_alive, mut upgrade_option) = (false, false, false);
        // Whether Connection names a field other than the fixed hop-by-hop ones.
        let mut names_fields = false;
        let (mut expect_continue, mut expectation_failed) = (false, false);
        let mut upgrade: Option<&[u8]> = None;
        let base = head.as_ptr() as usize;
        self.spans.clear();
        for h in req.headers.iter() {
            self.spans.push(Span {
                name: offsets(base, h.name.as_ptr() as usize, h.name.len(), head.len()),
                value: offsets(base, h.value.as_ptr() as usize, h.value.len(), head.len()),
            });
            let (name, value) = (h.name, h.value);
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                host = value;
            } else if name.eq_ignore_ascii_case("content-length") {
                // RFC 9110 §8.6: Content-Length = 1*DIGIT; a list of identical values (from
                // repeated fields or commas) may be taken as one.
                for v in value.split(|&b| b == b',') {
                    let n = match decimal(trim_ows(v)) {
                        Some(n) => n,
                        None => {
                            content_length_error.get_or_insert(Reject::BadContentLength);
                            continue;
                        }
                    };
                    match content_length {
                        Some(m) if m != n => {
                            content_length_error.get_or_insert(Reject::ConflictingContentLength);
                        }
                        _ => content_length = Some(n),
                    }
                }
                if content_length.is_none() {
                    content_length_error.get_or_insert(Reject::BadContentLength);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                for coding in tokens(value) {
                    last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
                    if last_is_chunked {
                        chunked += 1;
                    } else {
                        other_coding = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for option in tokens(value) {
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                    upgrade_option |= option.eq_ignore_ascii_case(b"upgrade");
                    names_fields |= !option.eq_ignore_ascii_case(b"close")
                        && !HOP_BY_HOP.iter().any(|h| option.eq_ignore_ascii_case(h.as_bytes()));
                }
            } else if name.eq_ignore_ascii_case("expect") {
                for e in tokens(value) {
                    if e.eq_ignore_ascii_case(b"100-continue") {
                        expect_continue = true;
                    } else {
                        expectation_failed = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("upgrade") && upgrade.is_none() {
                upgrade = Some(value);
            }
        }

        // RFC 9112 §3.2: exactly one Host in 1.1, at most one in 1.0, and a valid one.
        match (version, hosts) {
            (Version::Http11, 0) => return Err(Reject::MissingHost),
            (_, 2..) => return Err(Reject::DuplicateHost),
            _ => {}
        }
        if !is_authority(host, false) {
            return Err(Reject::BadHost);
        }

        // RFC 9112 §6.1 and §6.3: the framing, refusing anything two parsers could read apart.
        let framing = if transfer_encoding {
            if content_length.is_some() || content_length_error.is_some() {
                return Err(Reject::TransferEncodingWithContentLength);
            }
            if version == Version::Http10 {
                return Err(Reject::TransferEncodingHttp10);
            }
            if !last_is_chunked {
                return Err(Reject::NotChunked);
            }
            if chunked > 1 {
                return Err(Reject::ChunkedTwice);
            }
            if other_coding {
                return Err(Reject::UnsupportedTransferCoding);
            }
            Framing::Chunked
        } else if let Some(e) = content_length_error {
            return Err(e);
        } else {
            content_length.map_or(Framing::None, Framing::ContentLength)
        };

        let Target { form, authority, path, query } = split_target(method, target)?;
        let authority = match authority {
            Some(a) => a,
            None => std::str::from_utf8(host).map_err(|_| Reject::BadHost)?,
        };

        if expectation_failed {
            return Err(Reject::Expectation);
        }
        let http11 = version == Version::Http11;
        let upgrade = upgrade
            .filter(|_| http11 && upgrade_option)
            .map(trim_ows)
            .and_then(|u| std::str::from_utf8(u).ok())
            .filter(|u| !u.is_empty());
        let this: &'a HeadParser = self;
        Ok(RequestHead {
            head,
            spans: &this.spans,
            method,
            method_str,
            target,
            form,
            path,
            query,
            authority,
            version,
            framing,
            keep_alive: if http11 { !close } else { keep_alive && !close },
            expect_continue: expect_continue && http11,
            upgrade,
            names_fields,
        })
    }
}

/// `(start, end)` of a slice of the head from its address, or an empty range if it were not in
/// the head (httparse's slices always are).
fn offsets(base: usize, addr: usize, len: usize, head_len: usize) -> (usize, usize) {
    match addr.checked_sub(base) {
        Some(start) if start + len <= head_len => (start, start + len),
        _ => (0, 0),
    }
}

/// The length of the request-target in a (possibly partial) request line: from the first space
/// to the next, or to the end of what there is.
fn target_len(line: &[u8]) -> usize {
    let Some(sp) = line.iter().position(|&b| b == b' ') else { return 0 };
    let rest = &line[sp + 1..];
    rest.iter().position(|&b| b == b' ' || b == b'\r').unwrap_or(rest.len())
}

/// Which rule a head that httparse refused breaks.
fn classify(e: httparse::Error, head: &[u8]) -> Reject {
    match e {
        httparse::Error::TooManyHeaders => Reject::TooManyFields,
        httparse::Error::Version => Reject::Version,
        httparse::Error::HeaderValue => Reject::FieldValue,
        httparse::Error::HeaderName => {
            // The first field line that is not `token ":"`: obs-fold, whitespace before the
            // colon, or some other byte. (Empty lines before the request line skipped.)
            let from = head.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
            for line in head[from..].split(|&b| b == b'\n').skip(1) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    break;
                }
                let name = line.iter().take_while(|&&b| is_tchar(b)).count();
                match line.get(name) {
                    Some(b':') if name > 0 => continue,
                    _ if name == 0 && matches!(line[0], b' ' | b'\t') => return Reject::ObsFold,
                    Some(b' ' | b'\t') if name > 0 => return Reject::SpaceBeforeColon,
                    _ => return Reject::FieldName,
                }
            }
            Reject::FieldName
        }
        httparse::Error::Token | httparse::Error::NewLine | httparse::Error::Status => Reject::RequestLine,
    }
}

/// `1*DIGIT` as a u64: no sign, no spaces, no overflow.
fn decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Whether `a` is `host [":" port]` (RFC 3986 §3.2.2–3.2.3, as RFC 9110 §7.2 takes it for
/// Host): an IPv6 literal in brackets, or a reg-name / IPv4 address of unreserved,
/// sub-delims and percent-encoded bytes; a port of at most five digits and 65535. Empty is
/// valid (a Host for a target without authority) unless a port is required.
fn is_authority(a: &[u8], require_port: bool) -> bool {
    let (host_ok, port) = if a.first() == Some(&b'[') {
        let Some(close) = a.iter().position(|&b| b == b']') else { return false };
        let literal = std::str::from_utf8(&a[1..close]).ok().and_then(|s| s.parse::<Ipv6Addr>().ok());
        let port = match &a[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        };
        (literal.is_some(), port)
    } else {
        let (host, port) = match a.iter().position(|&b| b == b':') {
            Some(i) => (&a[..i], Some(&a[i + 1..])),
            None => (a, None),
        };
        (is_reg_name(host) && (!require_port || !host.is_empty()), port)
    };
    let port_ok = match port {
        None | Some([]) => !require_port,
        Some(p) => p.len() <= 5 && decimal(p).is_some_and(|n| n <= 65_535),
    };
    host_ok && port_ok
}

/// RFC 3986 reg-name: `*( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while i < h.len() {
        match h[i] {
            b'%' => {
                if !(h.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && h.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// A request-target taken apart.
struct Target<'a> {
    form: TargetForm,
    /// The authority of an absolute- or authority-form target.
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

/// The target's form, authority (absolute and authority forms), path and query.
fn split_target(method: Method, target: &str) -> Result<Target<'_>, Reject> {
    // RFC 9112 §3.2: a request-target has no fragment.
    if target.contains('#') {
        return Err(Reject::Target);
    }
    if method == Method::Connect {
        return if is_authority(target.as_bytes(), true) {
            Ok(Target { form: TargetForm::Authority, authority: Some(target), path: "", query: None })
        } else {
            Err(Reject::Target)
        };
    }
    fn split_query(s: &str) -> (&str, Option<&str>) {
        match s.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (s, None),
        }
    }
    if target.starts_with('/') {
        let (path, query) = split_query(target);
        return Ok(Target { form: TargetForm::Origin, authority: None, path, query });
    }
    if target == "*" {
        return if method == Method::Options {
            Ok(Target { form: TargetForm::Asterisk, authority: None, path: "*", query: None })
        } else {
            Err(Reject::Target)
        };
    }
    // Absolute form: scheme "://" authority path-abempty [ "?" query ].
    let Some((scheme, rest)) = target.split_once("://") else { return Err(Reject::Target) };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Reject::Target);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error.
    if authority.contains('@') {
        return Err(Reject::Target);
    }
    if authority.is_empty() || !is_authority(authority.as_bytes(), false) {
        return Err(Reject::BadHost);
    }
    let (path, query) = split_query(rest);
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target { form: TargetForm::Absolute, authority: Some(authority), path, query })
}

/// A parsed, checked request head: views into the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    head: &'a [u8],
    spans: &'a [Span],
    method: Method,
    method_str: &'a str,
    target: &'a str,
    form: TargetForm,
    path: &'a str,
    query: Option<&'a str>,
    authority: &'a str,
    version: Version,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: Option<&'a str>,
    /// Whether a Connection field names a field beyond [`HOP_BY_HOP`] (most do not: `close`,
    /// `keep-alive`), so that [`Self::is_hop_by_hop`] need not look for them.
    names_fields: bool,
}

impl<'a> RequestHead<'a> {
    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method's token as received.
    pub fn method_str(&self) -> &'a str {
        self.method_str
    }

    /// The request-target as received.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The target's form.
    pub fn form(&self) -> TargetForm {
        self.form
    }

    /// The path to route by: the target's path without query (`/` for an absolute-form target
    /// without one, `*` for asterisk-form, empty for authority-form).
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The authority to route by, `host[:port]`: an absolute- or authority-form target's, else
    /// the Host field's (empty for an HTTP/1.0 request without one).
    pub fn authority(&self) -> &'a str {
        self.authority
    }

    /// The version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// How the body is delimited.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the connection may carry another request after this one's response (RFC 9112
    /// §9.3).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Whether the client waits for 100 Continue before it sends the body.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }

    /// The Upgrade field's value, when an HTTP/1.1 request asks for an upgrade (with a
    /// Connection field that names `upgrade`).
    pub fn upgrade(&self) -> Option<&'a str> {
        self.upgrade
    }

    /// How many bytes of the buffer the head took: the body, or the next request, begins there.
    pub fn head_len(&self) -> usize {
        self.head.len()
    }

    /// The field lines, in order.
    pub fn fields(&self) -> impl Iterator<Item = Field<'a>> + 'a {
        let (head, spans) = (self.head, self.spans);
        spans.iter().map(move |s| Field {
            name: std::str::from_utf8(&head[s.name.0..s.name.1]).unwrap_or_default(),
            value: &head[s.value.0..s.value.1],
        })
    }

    /// The value of the first field called `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.fields().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value)
    }

    /// Whether a field is hop-by-hop for this request: one of [`super::HOP_BY_HOP`] or named by
    /// the Connection field. With `upgrading`, Upgrade is forwarded.
    pub fn is_hop_by_hop(&self, name: &str, upgrading: bool) -> bool {
        if is_fixed_hop_by_hop(name, upgrading) {
            return true;
        }
        if !self.names_fields || (upgrading && name.eq_ignore_ascii_case("upgrade")) {
            return false;
        }
        self.fields()
            .filter(|f| f.name.eq_ignore_ascii_case("connection"))
            .any(|f| tokens(f.value).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
    }

    /// The fields to forward: all but the hop-by-hop ones.
    pub fn end_to_end_fields(&self, upgrading: bool) -> impl Iterator<Item = Field<'a>> + 'a {
        let this = *self;
        self.fields().filter(move |f| !this.is_hop_by_hop(f.name, upgrading))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<RequestHead<'_>>, Reject> {
        // Leaked so that the head may outlive this helper: tests only.
        let p: &'static mut HeadParser = Box::leak(Box::new(HeadParser::new(Limits::DEFAULT)));
        p.parse(bytes)
    }

    fn head(bytes: &[u8]) -> RequestHead<'_> {
        parse(bytes).unwrap().unwrap()
    }

    #[test]
    fn an_origin_form_request_in_parts() {
        let bytes = b"GET /a/b?x=1&y HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\nBODY";
        let h = head(bytes);
        assert_eq!((h.method(), h.method_str(), h.target()), (Method::Get, "GET", "/a/b?x=1&y"));
        assert_eq!((h.form(), h.path(), h.query()), (TargetForm::Origin, "/a/b", Some("x=1&y")));
        assert_eq!(h.authority(), "Example.COM:8080");
        assert_eq!((h.version(), h.framing(), h.keep_alive()), (Version::Http11, Framing::None, true));
        assert_eq!(h.head_len(), bytes.len() - b"BODY".len());
        let fields: Vec<(&str, &[u8])> = h.fields().map(|f| (f.name, f.value)).collect();
        assert_eq!(fields, [("Host", &b"Example.COM:8080"[..]), ("Accept", b"*/*")]);
        assert_eq!(h.field("accept"), Some(&b"*/*"[..]));
        assert_eq!(h.field("cookie"), None);
    }

    #[test]
    fn absolute_form_authority_overrides_host() {
        let h = head(b"GET http://real.example:81/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n");
        assert_eq!(
            (h.form(), h.authority(), h.path(), h.query()),
            (TargetForm::Absolute, "real.example:81", "/p", Some("q"))
        );
        let h = head(b"GET HTTPS://real.example HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((h.authority(), h.path(), h.query()), ("real.example", "/", None));
        let h = head(b"GET http://real.example?q HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", Some("q")));
        let h = head(b"GET http://[2001:db8::1]:8080/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.authority(), "[2001:db8::1]:8080");
    }

    #[test]
    fn connect_and_options_targets() {
        let h = head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_eq!((h.form(), h.authority(), h.path()), (TargetForm::Authority, "example.com:443", ""));
        let h = head(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((h.form(), h.path()), (TargetForm::Asterisk, "*"));
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let cases: [(&[u8], bool); 7] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (bytes, keep) in cases {
            assert_eq!(head(bytes).keep_alive(), keep, "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn expect_and_upgrade() {
        let h = head(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue());
        let h = head(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!h.expect_continue(), "RFC 9110 §10.1.1: ignored in 1.0");
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n").unwrap_err(),
            Reject::Expectation
        );
        let h = head(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.upgrade(), Some("websocket"));
        let h = head(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.upgrade(), None, "Upgrade without Connection: upgrade");
        let h = head(b"GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!(h.upgrade(), None, "RFC 9110 §7.8: ignored in 1.0");
    }

    #[test]
    fn hop_by_hop_fields_include_those_connection_names() {
        let h = head(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, upgrade\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n\
              Proxy-Connection: x\r\nTE: trailers\r\nTrailer: T\r\nUpgrade: websocket\r\nX-Other: 2\r\n\r\n",
        );
        let forwarded: Vec<&str> = h.end_to_end_fields(false).map(|f| f.name).collect();
        assert_eq!(forwarded, ["Host", "Trailer", "X-Other"], "Trailer is the message's (RFC 9110 §6.6.2)");
        let forwarded: Vec<&str> = h.end_to_end_fields(true).map(|f| f.name).collect();
        assert_eq!(forwarded, ["Host", "Trailer", "Upgrade", "X-Other"]);
        assert!(h.is_hop_by_hop("x-secret", false));
        assert!(h.is_hop_by_hop("Transfer-Encoding", false));
        assert!(!h.is_hop_by_hop("X-Other", false));
    }

    #[test]
    fn the_parser_starts_afresh_after_a_head_and_after_a_refusal() {
        let mut p = HeadParser::new(Limits::DEFAULT);
        let two = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
        let n = p.parse(two).unwrap().unwrap().head_len();
        assert_eq!(p.parse(&two[n..]).unwrap().unwrap().path(), "/2");
        assert_eq!(p.parse(b"GET / HTTP/1.1\r\nHost: a\rb").unwrap_err(), Reject::BareCr);
        assert_eq!(p.parse(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap().path(), "/3");
    }

    #[test]
    fn authorities() {
        for ok in ["", "a", "a.b:1", "a:", "[::1]", "[::1]:65535", "1.2.3.4:80", "a%20b", "x_y~z!$&'()*+,;="]
        {
            assert!(is_authority(ok.as_bytes(), false), "{ok}");
        }
        for bad in
            ["a b", "a/b", "a:65536", "a:123456", "a:x", "[::1", "[::g]", "[::1]x", "a@b", "a%2", "é", "[]"]
        {
            assert!(!is_authority(bad.as_bytes(), false), "{bad}");
        }
        assert!(is_authority(b"a:1", true));
        assert!(!is_authority(b"a", true));
        assert!(!is_authority(b"a:", true));
        assert!(!is_authority(b":443", true));
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"007"), Some(7));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"18446744073709551616", b"+5", b"-5", b"5 ", b"0x5", b"5.0"] {
            assert_eq!(decimal(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
