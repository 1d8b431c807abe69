//! What an Ingress asks of the L7 stage beyond its routes: ingress-nginx's annotations
//! (`nginx.ingress.kubernetes.io/…`) as typed values.
//!
//! Control parses each annotation once, by a strict grammar, into a [`Policy`] (or a
//! [`Canary`] for a canary Ingress); the gateway gets the typed values and never a string to
//! interpret again. Nothing here is ever rendered into a language another program reads (the
//! design that gave ingress-nginx CVE-2025-1974 and its family): a value is a number, an
//! address prefix, a path, a header name and value checked as HTTP allows, a template of
//! literal text and numbered groups — data.
//!
//! The grammars ([`parse_size`], [`Cidr::parse`], [`RewriteTarget::parse`],
//! [`HashKey::parse`], [`PasswordHash::parse`], …) are here, beside the types, so that decoding
//! a table image checks a value with the very function control made it with.
//!
//! Not hot path (the gateway reads the values per request; they are built per generation).
//! No `unsafe`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The prefix of ingress-nginx's annotations.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx's default `proxy-connect-timeout`, seconds.
pub const DEFAULT_CONNECT_TIMEOUT_S: u32 = 5;
/// ingress-nginx's default `proxy-read-timeout` and `proxy-send-timeout`, seconds.
pub const DEFAULT_READ_TIMEOUT_S: u32 = 60;
/// ingress-nginx's default `limit-burst-multiplier`.
pub const DEFAULT_BURST_MULTIPLIER: u32 = 5;
/// ingress-nginx's default `canary-weight-total`.
pub const DEFAULT_CANARY_WEIGHT_TOTAL: u32 = 100;
/// ingress-nginx's default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";
/// ingress-nginx's default `cors-allow-methods`.
pub const DEFAULT_CORS_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
/// ingress-nginx's default `cors-allow-headers`.
pub const DEFAULT_CORS_HEADERS: &str = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,\
                                        Cache-Control,Content-Type,Range,Authorization";
/// ingress-nginx's default `cors-max-age`, seconds.
pub const DEFAULT_CORS_MAX_AGE_S: u32 = 1_728_000;
/// The HSTS header ingress-nginx sends on HTTPS responses of a host with a certificate.
pub const HSTS_VALUE: &str = "max-age=31536000; includeSubDomains";

/// The longest annotation value Sluice reads (a longer one is refused, whatever it is).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Everything an Ingress's annotations ask of its paths and default backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `rewrite-target`: the upstream path, made from the matched path's groups.
    pub rewrite: Option<RewriteTarget>,
    /// `use-regex` (or a `rewrite-target`): the host's paths are regexes (ingress-nginx's
    /// dialect only).
    pub use_regex: bool,
    /// `app-root`: a request for exactly `/` gets 302 to this path.
    pub app_root: Option<String>,
    /// `x-forwarded-prefix`: the `X-Forwarded-Prefix` header sent upstream.
    pub forwarded_prefix: Option<String>,
    /// `ssl-redirect`: plain HTTP to a host with a certificate gets 308 to HTTPS, and HTTPS
    /// responses of such a host carry HSTS. ingress-nginx's default is true: control sets it for
    /// the Ingresses of ingress-nginx's classes; Sluice's own class redirects only when asked.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: the redirect even without a certificate.
    pub force_ssl_redirect: bool,
    /// `preserve-trailing-slash`: the redirect keeps the URI's trailing `/`.
    pub preserve_trailing_slash: bool,
    /// `permanent-redirect` / `temporal-redirect` (+ `-code`): answer with a redirect.
    pub redirect: Option<Redirect>,
    /// `auth-type: basic` with its Secret.
    pub basic_auth: Option<BasicAuth>,
    /// Every request answers 503: an annotation that guards the Ingress could not be honoured
    /// (a missing auth Secret, an allow list without a valid entry, an authentication Sluice
    /// does not implement). Why, for logs.
    pub deny: Option<String>,
    /// `limit-*`.
    pub limits: Limits,
    /// `backend-protocol`.
    pub backend_protocol: BackendProtocol,
    /// `proxy-body-size` in bytes (`Some(0)`: no limit); `None`: the gateway's default.
    pub body_limit: Option<u64>,
    /// `proxy-connect-timeout`, seconds (`None`: the gateway's, ingress-nginx's 5 s by default).
    pub connect_timeout_s: Option<u32>,
    /// `proxy-read-timeout`, seconds (`None`: the gateway's, 60 s by default).
    pub read_timeout_s: Option<u32>,
    /// `proxy-send-timeout`, seconds (`None`: the gateway's, 60 s by default).
    pub send_timeout_s: Option<u32>,
    /// `whitelist-source-range` / `allowlist-source-range`: only these clients (else 403).
    /// Empty: everyone.
    pub allow_sources: Vec<Cidr>,
    /// `denylist-source-range`: these clients get 403.
    pub deny_sources: Vec<Cidr>,
    /// `affinity: cookie` and its `session-cookie-*` keys.
    pub affinity: Option<CookieAffinity>,
    /// `upstream-hash-by`: the endpoint is a consistent hash of this value.
    pub hash_by: Option<HashKey>,
    /// `enable-cors` and its `cors-*` keys.
    pub cors: Option<Cors>,
    /// `upstream-vhost`: the Host header sent upstream.
    pub upstream_vhost: Option<String>,
    /// `custom-headers`: headers added to every response (from a ConfigMap).
    pub response_headers: Vec<Header>,
    /// `proxy-set-headers`: headers set on every request sent upstream (from a ConfigMap).
    pub request_headers: Vec<Header>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            rewrite: None,
            use_regex: false,
            app_root: None,
            forwarded_prefix: None,
            ssl_redirect: false,
            force_ssl_redirect: false,
            preserve_trailing_slash: false,
            redirect: None,
            basic_auth: None,
            deny: None,
            limits: Limits::default(),
            backend_protocol: BackendProtocol::Http,
            body_limit: None,
            connect_timeout_s: None,
            read_timeout_s: None,
            send_timeout_s: None,
            allow_sources: Vec::new(),
            deny_sources: Vec::new(),
            affinity: None,
            hash_by: None,
            cors: None,
            upstream_vhost: None,
            response_headers: Vec::new(),
            request_headers: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether it asks nothing of a request beyond the defaults.
    pub fn is_default(&self) -> bool {
        *self == Policy::default()
    }

    /// Whether `client` may be served by the source ranges (false: 403).
    pub fn admits(&self, client: IpAddr) -> bool {
        (self.allow_sources.is_empty() || self.allow_sources.iter().any(|c| c.contains(client)))
            && !self.deny_sources.iter().any(|c| c.contains(client))
    }
}

/// An address prefix, `198.18.0.0/15` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d[/n]` or `x::y[/n]`. Host bits must be zero, as ingress-nginx's Go
    /// `net.ParseCIDR` would take them: it masks them; so does this (a finding would be noise).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, n) = match s.split_once('/') {
            Some((a, n)) => (a, Some(n)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match n {
            None => max,
            Some(n) if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) => n
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("{s:?}: prefix over /{max}"))?,
            Some(_) => return Err(format!("{s:?} is not an address or CIDR")),
        };
        Ok(Cidr { addr: mask(addr, len), len })
    }

    /// Whether `ip` is in it (an IPv4-mapped IPv6 client counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }

    /// A comma-separated list (spaces allowed): the good entries and a message per bad one.
    pub fn parse_list(s: &str) -> (Vec<Cidr>, Vec<String>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match Cidr::parse(item) {
                Ok(c) => good.push(c),
                Err(e) => bad.push(e),
            }
        }
        (good, bad)
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A size as ingress-nginx writes them: `N`, `Nk`, `Nm`, `Ng` (either case), bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a size (N, Nk, Nm or Ng)"));
    }
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)).ok_or_else(|| format!("{s:?} is too large"))
}

/// A whole number of seconds or a count: plain decimal digits, at most `max`.
pub fn parse_count(s: &str, max: u32) -> Result<u32, String> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a whole number"));
    }
    s.parse::<u32>().ok().filter(|&n| n <= max).ok_or_else(|| format!("{s:?} is over {max}"))
}

/// `true` or `false`, as Go's `strconv.ParseBool` takes them (ingress-nginx's parser).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

/// A URL path as a redirect or header may carry it: begins with `/`, only the characters of a
/// path and query (RFC 3986 `pchar`, `/`, `?`), nothing that ends a header line.
pub fn parse_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("{s:?} is not a path (it must begin with /)"));
    }
    if s.len() > 2048 || !s.bytes().all(is_url_byte) {
        return Err(format!("{s:?} is not a path (characters outside a URL's)"));
    }
    Ok(s.to_owned())
}

/// RFC 3986: unreserved, sub-delims, `:@/?%#[]`.
fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%#[]".contains(&b)
}

/// An absolute `http`/`https` URL (a redirect's target): scheme, a host, then URL characters.
pub fn parse_url(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && s.len() <= 2048 && s.bytes().all(is_url_byte) => {
            Ok(s.to_owned())
        }
        _ => Err(format!("{s:?} is not an absolute http(s) URL")),
    }
}

/// A header field name: an RFC 9110 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A field value: visible ASCII, spaces and tabs inside, no CR/LF/NUL (RFC 9110 §5.5; obs-text
/// refused too).
pub fn is_field_value(s: &str) -> bool {
    s.len() <= MAX_VALUE_BYTES
        && s.bytes().all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b))
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t'])
}

/// A header to add or set: name and value checked as HTTP allows them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Header {
    /// The field name (a token).
    pub name: String,
    /// The value.
    pub value: String,
}

impl Header {
    /// Checks a name and a value.
    pub fn new(name: &str, value: &str) -> Result<Header, String> {
        if !is_token(name) {
            return Err(format!("{name:?} is not a header name"));
        }
        if !is_field_value(value) {
            return Err(format!("header {name}: {value:?} is not a header value"));
        }
        Ok(Header { name: name.to_owned(), value: value.to_owned() })
    }
}

/// A rewrite target: literal text and the matched path's groups (`$1`…`$9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteTarget {
    /// The parts, in order.
    pub parts: Vec<RewritePart>,
}

/// A part of a [`RewriteTarget`] or a [`HashKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewritePart {
    /// Text copied as is.
    Literal(String),
    /// The n-th group of the path's regex (1-based; 0 is the whole match).
    Group(u8),
}

impl RewriteTarget {
    /// Parses ingress-nginx's grammar: only `-._~a-zA-Z0-9/:$` (its own check; anything else,
    /// a query or a space included, is refused), `$n` for a group. A `$` not followed by a digit
    /// is refused too: nginx would read a variable there.
    pub fn parse(s: &str) -> Result<RewriteTarget, String> {
        if s.is_empty() || s.len() > 2048 {
            return Err("empty or longer than 2048 bytes".into());
        }
        if let Some(c) = s.chars().find(|&c| !(c.is_ascii_alphanumeric() || "-._~/:$".contains(c))) {
            return Err(format!("{s:?} has {c:?}; a rewrite target may have only -._~a-zA-Z0-9/:$"));
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut bytes = s.bytes().peekable();
        while let Some(b) = bytes.next() {
            if b != b'$' {
                lit.push(char::from(b));
                continue;
            }
            match bytes.next() {
                Some(d @ b'0'..=b'9') => {
                    if !lit.is_empty() {
                        parts.push(RewritePart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(RewritePart::Group(d - b'0'));
                }
                _ => return Err(format!("{s:?}: `$` must be followed by a group number ($1..$9)")),
            }
        }
        if !lit.is_empty() {
            parts.push(RewritePart::Literal(lit));
        }
        Ok(RewriteTarget { parts })
    }

    /// The highest group it names (0: none).
    pub fn max_group(&self) -> u8 {
        self.parts.iter().map(|p| if let RewritePart::Group(n) = p { *n } else { 0 }).max().unwrap_or(0)
    }
}

impl fmt::Display for RewriteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                RewritePart::Literal(s) => f.write_str(s)?,
                RewritePart::Group(n) => write!(f, "${n}")?,
            }
        }
        Ok(())
    }
}

/// A redirect answered instead of proxying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The Location, verbatim (an absolute URL or a path).
    pub location: String,
    /// The status.
    pub code: u16,
}

/// Basic authentication (RFC 7617).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// `auth-realm` (quoted-string content: no `"`, `\` or control characters).
    pub realm: String,
    /// The users and their password hashes, sorted by name.
    pub users: Vec<(String, PasswordHash)>,
}

/// A password hash of an htpasswd file.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// bcrypt, `$2a$`, `$2b$` or `$2y$`: the whole string.
    Bcrypt(String),
    /// Apache's MD5 (`$apr1$salt$hash`) or MD5-crypt (`$1$salt$hash`): magic, salt, hash.
    Md5Crypt {
        /// `apr1` or `1`.
        magic: String,
        /// Up to 8 characters.
        salt: String,
        /// 22 characters of crypt's base64.
        hash: String,
    },
    /// `{SHA}` + base64 of the password's SHA-1.
    Sha1([u8; 20]),
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash can be attacked offline: logs say which kind, never the hash.
        f.write_str(self.kind())
    }
}

/// crypt(3)'s base64 alphabet.
const CRYPT64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl PasswordHash {
    /// Its kind, for logs and the migration report.
    pub fn kind(&self) -> &'static str {
        match self {
            PasswordHash::Bcrypt(_) => "bcrypt",
            PasswordHash::Md5Crypt { .. } => "md5-crypt",
            PasswordHash::Sha1(_) => "sha1",
        }
    }

    /// Parses a hash as htpasswd writes it.
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        if let Some(b64) = s.strip_prefix("{SHA}") {
            let d = base64(b64).filter(|d| d.len() == 20).ok_or("{SHA} hash: not base64 of 20 bytes")?;
            let mut h = [0; 20];
            h.copy_from_slice(&d);
            return Ok(PasswordHash::Sha1(h));
        }
        for magic in ["2a", "2b", "2y"] {
            if let Some(rest) =
                s.strip_prefix('$').and_then(|r| r.strip_prefix(magic)).and_then(|r| r.strip_prefix('$'))
            {
                // $2y$NN$ + 22 characters of salt + 31 of hash. Bytes, not `str` slices: a
                // multibyte character there is refused, not a panic at a non-boundary.
                let b = rest.as_bytes();
                let cost = |d: &[u8]| u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0');
                let ok = b.len() == 2 + 1 + 53
                    && b[..2].iter().all(u8::is_ascii_digit)
                    && (4..=31).contains(&cost(&b[..2]))
                    && b[2] == b'$'
                    && b[3..].iter().all(|c| CRYPT64.contains(c));
                return if ok {
                    Ok(PasswordHash::Bcrypt(s.to_owned()))
                } else {
                    Err("malformed bcrypt hash".into())
                };
            }
        }
        for magic in ["apr1", "1"] {
            if let Some(rest) =
                s.strip_prefix('$').and_then(|r| r.strip_prefix(magic)).and_then(|r| r.strip_prefix('$'))
            {
                let Some((salt, hash)) = rest.split_once('$') else {
                    return Err("malformed MD5 hash".into());
                };
                let ok = salt.len() <= 8
                    && salt.bytes().all(|b| CRYPT64.contains(&b))
                    && hash.len() == 22
                    && hash.bytes().all(|b| CRYPT64.contains(&b));
                return if ok {
                    Ok(PasswordHash::Md5Crypt { magic: magic.into(), salt: salt.into(), hash: hash.into() })
                } else {
                    Err("malformed MD5 hash".into())
                };
            }
        }
        Err("not a hash Sluice verifies (bcrypt $2y$, MD5 $apr1$ or $1$, {SHA}); plain text and DES \
             crypt are refused"
            .into())
    }
}

/// Standard base64 (RFC 4648 §4), padding optional but correct when present, into `out`: the
/// bytes written (`None` if it is not base64 or `out` is too small). Allocates nothing (the
/// gateway decodes each `Authorization` header with it).
pub fn base64_into(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let body_len = s.len() - s.iter().rev().take_while(|&&c| c == b'=').count();
    let pad = s.len() - body_len;
    if pad > 2 || (pad > 0 && !s.len().is_multiple_of(4)) || body_len % 4 == 1 {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut acc, mut bits, mut n) = (0u32, 0, 0);
    for &c in &s[..body_len] {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    Some(n)
}

/// Standard base64 with padding; `None` if it is not.
pub fn base64(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = vec![0; s.len() / 4 * 3];
    let n = base64_into(s.as_bytes(), &mut out)?;
    out.truncate(n);
    Some(out)
}

/// Parses an htpasswd file (`user:hash` lines; `#` comments and empty lines skipped): the
/// users, and a message per line refused (the user on it cannot log in).
pub fn parse_htpasswd(text: &str) -> (Vec<(String, PasswordHash)>, Vec<String>) {
    let mut users: Vec<(String, PasswordHash)> = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((user, hash)) if !user.is_empty() && is_user(user) => match PasswordHash::parse(hash.trim())
            {
                Ok(h) if users.iter().any(|(u, _)| u == user) => {
                    // htpasswd and nginx take the first line of a user.
                    let _ = h;
                    bad.push(format!("line {}: user {user:?} again; the first line is used", i + 1));
                }
                Ok(h) => users.push((user.to_owned(), h)),
                Err(e) => bad.push(format!("line {}: user {user:?}: {e}", i + 1)),
            },
            _ => bad.push(format!("line {}: not `user:hash`", i + 1)),
        }
    }
    users.sort_by(|a, b| a.0.cmp(&b.0));
    (users, bad)
}

/// A user name of Basic auth: no colon (RFC 7617 §2), no control characters.
pub fn is_user(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b > 0x20 && b != 0x7f && b != b':')
}

/// A realm as a quoted-string may hold it without escapes.
pub fn is_realm(s: &str) -> bool {
    s.len() <= 255 && s.bytes().all(|b| (b == b' ' || (0x21..0x7f).contains(&b)) && b != b'"' && b != b'\\')
}

/// Request limits per client address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `limit-rps`.
    pub rps: Option<u32>,
    /// `limit-rpm`.
    pub rpm: Option<u32>,
    /// `limit-connections`: concurrent connections.
    pub connections: Option<u32>,
    /// `limit-burst-multiplier` (default 5): burst = limit × this.
    pub burst_multiplier: u32,
    /// `limit-whitelist`: clients the limits do not apply to.
    pub whitelist: Vec<Cidr>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.rps.is_some() || self.rpm.is_some() || self.connections.is_some()
    }
}

/// `backend-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendProtocol {
    /// HTTP/1.1 (the default).
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// gRPC: HTTP/2 in clear (h2c).
    Grpc,
    /// gRPC over TLS (h2).
    Grpcs,
    /// HTTP/2 in clear, prior knowledge.
    H2c,
}

impl BackendProtocol {
    /// Every one, with its annotation value.
    pub const ALL: [(BackendProtocol, &'static str); 5] = [
        (BackendProtocol::Http, "HTTP"),
        (BackendProtocol::Https, "HTTPS"),
        (BackendProtocol::Grpc, "GRPC"),
        (BackendProtocol::Grpcs, "GRPCS"),
        (BackendProtocol::H2c, "H2C"),
    ];

    /// Its annotation value.
    pub fn name(self) -> &'static str {
        BackendProtocol::ALL.iter().find(|(p, _)| *p == self).map_or("HTTP", |(_, n)| n)
    }

    /// Whether requests go upstream over HTTP/2.
    pub fn is_h2(self) -> bool {
        matches!(self, BackendProtocol::Grpc | BackendProtocol::Grpcs | BackendProtocol::H2c)
    }

    /// Whether the upstream connection is TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, BackendProtocol::Https | BackendProtocol::Grpcs)
    }
}

/// `affinity: cookie`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAffinity {
    /// `session-cookie-name`.
    pub name: String,
    /// `session-cookie-path` (default: the matched path, as ingress-nginx sets it; `None` here).
    pub path: Option<String>,
    /// `session-cookie-expires`, seconds.
    pub expires_s: Option<u32>,
    /// `session-cookie-max-age`, seconds.
    pub max_age_s: Option<u32>,
    /// `session-cookie-samesite`.
    pub samesite: Option<SameSite>,
    /// `affinity-mode: persistent` (default balanced).
    pub persistent: bool,
}

/// The SameSite attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `None`.
    None,
    /// `Lax`.
    Lax,
    /// `Strict`.
    Strict,
}

impl SameSite {
    /// Its attribute value.
    pub fn name(self) -> &'static str {
        match self {
            SameSite::None => "None",
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
        }
    }
}

/// A cookie name: an RFC 6265 token.
pub fn is_cookie_name(s: &str) -> bool {
    is_token(s) && s.len() <= 255
}

/// `upstream-hash-by`: a value made of literal text and request variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKey {
    /// The parts, in order.
    pub parts: Vec<HashPart>,
}

/// A part of a [`HashKey`]: one of nginx's request variables, or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashPart {
    /// Text.
    Literal(String),
    /// `$request_uri`: path and query as received.
    RequestUri,
    /// `$uri`: the path.
    Uri,
    /// `$args` / `$query_string`.
    Args,
    /// `$host`.
    Host,
    /// `$remote_addr` / `$binary_remote_addr`.
    RemoteAddr,
    /// `$http_NAME`: a request header (name lowercased, `_` for `-`).
    Header(String),
    /// `$cookie_NAME`.
    Cookie(String),
    /// `$arg_NAME`: a query argument.
    Arg(String),
}

impl HashKey {
    /// Parses `$variable` references (also `${variable}`) between literal text. Only the
    /// variables of [`HashPart`]; any other is refused by name.
    pub fn parse(s: &str) -> Result<HashKey, String> {
        if s.is_empty() || s.len() > 512 || !s.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(format!("{s:?} is not a hash key (printable ASCII, no spaces)"));
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            let (name, after) = if let Some(r) = rest.strip_prefix('{') {
                let end = r.find('}').ok_or_else(|| format!("{s:?}: unclosed ${{"))?;
                (&r[..end], &r[end + 1..])
            } else {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            let part = match name {
                "request_uri" => HashPart::RequestUri,
                "uri" | "document_uri" => HashPart::Uri,
                "args" | "query_string" => HashPart::Args,
                "host" => HashPart::Host,
                "remote_addr" | "binary_remote_addr" => HashPart::RemoteAddr,
                n => {
                    let named =
                        |p: &str| n.strip_prefix(p).filter(|v| !v.is_empty()).map(str::to_ascii_lowercase);
                    if let Some(h) = named("http_") {
                        HashPart::Header(h.replace('_', "-"))
                    } else if let Some(c) = n.strip_prefix("cookie_").filter(|v| !v.is_empty()) {
                        HashPart::Cookie(c.to_owned())
                    } else if let Some(a) = n.strip_prefix("arg_").filter(|v| !v.is_empty()) {
                        HashPart::Arg(a.to_owned())
                    } else {
                        return Err(format!(
                            "{s:?}: ${n} is not a variable Sluice hashes by (request_uri, uri, args, host, \
                             remote_addr, http_*, cookie_*, arg_*)"
                        ));
                    }
                }
            };
            if !lit.is_empty() {
                parts.push(HashPart::Literal(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = after;
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(HashPart::Literal(lit));
        }
        Ok(HashKey { parts })
    }
}

/// `enable-cors` and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `cors-allow-origin`: `*`, or origins (`https://a.com`, `https://*.a.com`).
    pub allow_origins: Vec<String>,
    /// `cors-allow-methods`.
    pub allow_methods: String,
    /// `cors-allow-headers`.
    pub allow_headers: String,
    /// `cors-expose-headers`.
    pub expose_headers: String,
    /// `cors-allow-credentials` (default true).
    pub allow_credentials: bool,
    /// `cors-max-age`, seconds.
    pub max_age_s: u32,
}

impl Cors {
    /// Whether `origin` is allowed; the value to send back in Access-Control-Allow-Origin.
    pub fn allowed<'o>(&'o self, origin: &'o str) -> Option<&'o str> {
        if self.allow_origins.iter().any(|o| o == "*") {
            return Some(if self.allow_credentials { origin } else { "*" });
        }
        self.allow_origins
            .iter()
            .any(|o| match o.split_once("://*.") {
                Some((scheme, suffix)) => origin
                    .strip_prefix(scheme)
                    .and_then(|r| r.strip_prefix("://"))
                    .and_then(|host| host.strip_suffix(suffix))
                    .is_some_and(|label| label.ends_with('.') && label.len() > 1),
                None => o.eq_ignore_ascii_case(origin),
            })
            .then_some(origin)
    }
}

/// A canary Ingress's rule: which requests go to it instead of the main Ingress's backend
/// (ingress-nginx: header first, then cookie, then weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// `canary-by-header`: the header to look at.
    pub header: Option<String>,
    /// `canary-by-header-value`: the value that means "canary" (instead of `always`).
    pub header_value: Option<String>,
    /// `canary-by-header-pattern`: a regex the value must match (used only without a value).
    pub header_pattern: Option<String>,
    /// `canary-by-cookie`: a cookie whose value `always`/`never` decides.
    pub cookie: Option<String>,
    /// `canary-weight`: out of [`Canary::weight_total`].
    pub weight: u32,
    /// `canary-weight-total` (default 100).
    pub weight_total: u32,
}

impl Default for Canary {
    fn default() -> Canary {
        Canary {
            header: None,
            header_value: None,
            header_pattern: None,
            cookie: None,
            weight: 0,
            weight_total: DEFAULT_CANARY_WEIGHT_TOTAL,
        }
    }
}

/// What a canary's header or cookie says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryVote {
    /// To the canary.
    Canary,
    /// To the main backend.
    Main,
    /// Nothing said: the next rule decides.
    Abstain,
}

impl Canary {
    /// The header's vote, given its value (if the request has the header) and whether the
    /// value matches the pattern (the caller runs the regex).
    pub fn header_vote(&self, value: Option<&str>, matches_pattern: bool) -> CanaryVote {
        let (Some(_), Some(v)) = (&self.header, value) else { return CanaryVote::Abstain };
        if let Some(want) = &self.header_value {
            return if v == want { CanaryVote::Canary } else { CanaryVote::Abstain };
        }
        if self.header_pattern.is_some() {
            return if matches_pattern { CanaryVote::Canary } else { CanaryVote::Abstain };
        }
        match v {
            "always" => CanaryVote::Canary,
            "never" => CanaryVote::Main,
            _ => CanaryVote::Abstain,
        }
    }

    /// The cookie's vote, given its value.
    pub fn cookie_vote(&self, value: Option<&str>) -> CanaryVote {
        match (&self.cookie, value) {
            (Some(_), Some("always")) => CanaryVote::Canary,
            (Some(_), Some("never")) => CanaryVote::Main,
            _ => CanaryVote::Abstain,
        }
    }

    /// The weight's say, given a uniform draw in `0..weight_total`.
    pub fn weight_picks(&self, draw: u32) -> bool {
        draw < self.weight
    }
}

impl FromStr for SameSite {
    type Err = String;
    fn from_str(s: &str) -> Result<SameSite, String> {
        match s {
            "None" | "none" => Ok(SameSite::None),
            "Lax" | "lax" => Ok(SameSite::Lax),
            "Strict" | "strict" => Ok(SameSite::Strict),
            _ => Err(format!("{s:?} is not None, Lax or Strict")),
        }
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                HashPart::Literal(s) => f.write_str(s)?,
                HashPart::RequestUri => f.write_str("$request_uri")?,
                HashPart::Uri => f.write_str("$uri")?,
                HashPart::Args => f.write_str("$args")?,
                HashPart::Host => f.write_str("$host")?,
                HashPart::RemoteAddr => f.write_str("$remote_addr")?,
                HashPart::Header(h) => write!(f, "${{http_{}}}", h.replace('-', "_"))?,
                HashPart::Cookie(c) => write!(f, "${{cookie_{c}}}")?,
                HashPart::Arg(a) => write!(f, "${{arg_{a}}}")?,
            }
        }
        Ok(())
    }
}

impl PasswordHash {
    /// The hash as htpasswd writes it (what [`PasswordHash::parse`] reads).
    pub fn to_text(&self) -> String {
        match self {
            PasswordHash::Bcrypt(s) => s.clone(),
            PasswordHash::Md5Crypt { magic, salt, hash } => format!("${magic}${salt}${hash}"),
            PasswordHash::Sha1(h) => format!("{{SHA}}{}", base64_encode(h)),
        }
    }
}

/// Standard base64 with padding.
pub fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// [`Policy`] and [`Canary`] as bytes, for the table image: every field in a fixed order, each
/// value as the text its grammar reads, so that decoding checks it with that grammar. A decoded
/// value is one control could have made; anything else is an error.
pub mod codec {
    use super::*;

    /// Why bytes are not a policy.
    pub type Error = &'static str;

    struct W<'a>(&'a mut Vec<u8>);

    impl W<'_> {
        fn u8(&mut self, v: u8) {
            self.0.push(v);
        }
        fn u32(&mut self, v: u32) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn u64(&mut self, v: u64) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn bool(&mut self, v: bool) {
            self.u8(u8::from(v));
        }
        fn str(&mut self, s: &str) {
            self.u32(s.len() as u32);
            self.0.extend_from_slice(s.as_bytes());
        }
        fn opt_str(&mut self, s: Option<&str>) {
            self.bool(s.is_some());
            if let Some(s) = s {
                self.str(s);
            }
        }
        fn opt_u32(&mut self, v: Option<u32>) {
            self.bool(v.is_some());
            self.u32(v.unwrap_or(0));
        }
        fn cidrs(&mut self, c: &[Cidr]) {
            self.u32(c.len() as u32);
            for c in c {
                self.str(&c.to_string());
            }
        }
        fn headers(&mut self, h: &[Header]) {
            self.u32(h.len() as u32);
            for h in h {
                self.str(&h.name);
                self.str(&h.value);
            }
        }
    }

    struct R<'a>(&'a [u8]);

    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
            if self.0.len() < n {
                return Err("policy bytes end early");
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Ok(a)
        }
        fn u8(&mut self) -> Result<u8, Error> {
            Ok(self.take(1)?[0])
        }
        fn u32(&mut self) -> Result<u32, Error> {
            Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "policy bytes end early")?))
        }
        fn u64(&mut self) -> Result<u64, Error> {
            Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "policy bytes end early")?))
        }
        fn bool(&mut self) -> Result<bool, Error> {
            match self.u8()? {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err("policy flag neither 0 nor 1"),
            }
        }
        fn str(&mut self) -> Result<&'a str, Error> {
            let n = self.u32()? as usize;
            std::str::from_utf8(self.take(n)?).map_err(|_| "policy string not UTF-8")
        }
        fn opt_str(&mut self) -> Result<Option<&'a str>, Error> {
            if self.bool()? { Ok(Some(self.str()?)) } else { Ok(None) }
        }
        fn opt_u32(&mut self) -> Result<Option<u32>, Error> {
            let some = self.bool()?;
            let v = self.u32()?;
            Ok(some.then_some(v))
        }
        /// A count of items each at least `min` bytes long: never more than the bytes left allow.
        fn count(&mut self, min: usize) -> Result<usize, Error> {
            let n = self.u32()? as usize;
            if n.saturating_mul(min) > self.0.len() {
                return Err("policy list longer than its bytes");
            }
            Ok(n)
        }
        fn cidrs(&mut self) -> Result<Vec<Cidr>, Error> {
            let n = self.count(4)?;
            (0..n).map(|_| Cidr::parse(self.str()?).map_err(|_| "policy CIDR malformed")).collect()
        }
        fn headers(&mut self) -> Result<Vec<Header>, Error> {
            let n = self.count(8)?;
            (0..n)
                .map(|_| {
                    let (name, value) = (self.str()?, self.str()?);
                    Header::new(name, value).map_err(|_| "policy header malformed")
                })
                .collect()
        }
    }

    fn checked<T>(v: Option<&str>, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>, Error> {
        v.map(|s| parse(s).map_err(|_| "policy value fails its grammar")).transpose()
    }

    /// Appends `p`'s bytes to `out`.
    pub fn encode(p: &Policy, out: &mut Vec<u8>) {
        let mut w = W(out);
        w.opt_str(p.rewrite.as_ref().map(|r| r.to_string()).as_deref());
        w.bool(p.use_regex);
        w.opt_str(p.app_root.as_deref());
        w.opt_str(p.forwarded_prefix.as_deref());
        w.bool(p.ssl_redirect);
        w.bool(p.force_ssl_redirect);
        w.bool(p.preserve_trailing_slash);
        w.bool(p.redirect.is_some());
        if let Some(r) = &p.redirect {
            w.str(&r.location);
            w.u32(u32::from(r.code));
        }
        w.bool(p.basic_auth.is_some());
        if let Some(a) = &p.basic_auth {
            w.str(&a.realm);
            w.u32(a.users.len() as u32);
            for (u, h) in &a.users {
                w.str(u);
                w.str(&h.to_text());
            }
        }
        w.opt_str(p.deny.as_deref());
        w.opt_u32(p.limits.rps);
        w.opt_u32(p.limits.rpm);
        w.opt_u32(p.limits.connections);
        w.u32(p.limits.burst_multiplier);
        w.cidrs(&p.limits.whitelist);
        w.u8(BackendProtocol::ALL.iter().position(|(b, _)| *b == p.backend_protocol).unwrap_or(0) as u8);
        w.bool(p.body_limit.is_some());
        w.u64(p.body_limit.unwrap_or(0));
        w.opt_u32(p.connect_timeout_s);
        w.opt_u32(p.read_timeout_s);
        w.opt_u32(p.send_timeout_s);
        w.cidrs(&p.allow_sources);
        w.cidrs(&p.deny_sources);
        w.bool(p.affinity.is_some());
        if let Some(a) = &p.affinity {
            w.str(&a.name);
            w.opt_str(a.path.as_deref());
            w.opt_u32(a.expires_s);
            w.opt_u32(a.max_age_s);
            w.u8(a.samesite.map_or(0, |s| s as u8 + 1));
            w.bool(a.persistent);
        }
        w.opt_str(p.hash_by.as_ref().map(|h| h.to_string()).as_deref());
        w.bool(p.cors.is_some());
        if let Some(c) = &p.cors {
            w.u32(c.allow_origins.len() as u32);
            for o in &c.allow_origins {
                w.str(o);
            }
            w.str(&c.allow_methods);
            w.str(&c.allow_headers);
            w.str(&c.expose_headers);
            w.bool(c.allow_credentials);
            w.u32(c.max_age_s);
        }
        w.opt_str(p.upstream_vhost.as_deref());
        w.headers(&p.response_headers);
        w.headers(&p.request_headers);
    }

    /// Reads a policy [`encode`] wrote; every value checked by its grammar, every byte used.
    pub fn decode(b: &[u8]) -> Result<Policy, Error> {
        let mut r = R(b);
        let rewrite = checked(r.opt_str()?, RewriteTarget::parse)?;
        let use_regex = r.bool()?;
        let app_root = checked(r.opt_str()?, parse_path)?;
        let forwarded_prefix = r.opt_str()?.map(str::to_owned);
        if forwarded_prefix.as_deref().is_some_and(|v| !is_field_value(v)) {
            return Err("policy header value malformed");
        }
        let (ssl_redirect, force_ssl_redirect, preserve_trailing_slash) = (r.bool()?, r.bool()?, r.bool()?);
        let redirect = if r.bool()? {
            let location = r.str()?;
            let location = parse_url(location)
                .or_else(|_| parse_path(location))
                .map_err(|_| "policy redirect malformed")?;
            let code = u16::try_from(r.u32()?)
                .ok()
                .filter(|c| (300..=308).contains(c))
                .ok_or("policy redirect code")?;
            Some(Redirect { location, code })
        } else {
            None
        };
        let basic_auth = if r.bool()? {
            let realm = r.str()?;
            if !is_realm(realm) {
                return Err("policy realm malformed");
            }
            let n = r.count(8)?;
            let mut users = Vec::with_capacity(n);
            for _ in 0..n {
                let (u, h) = (r.str()?, r.str()?);
                if !is_user(u) {
                    return Err("policy user malformed");
                }
                users.push((u.to_owned(), PasswordHash::parse(h).map_err(|_| "policy hash malformed")?));
            }
            if !users.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err("policy users not sorted");
            }
            Some(BasicAuth { realm: realm.to_owned(), users })
        } else {
            None
        };
        let deny = r.opt_str()?.map(str::to_owned);
        let limits = Limits {
            rps: r.opt_u32()?,
            rpm: r.opt_u32()?,
            connections: r.opt_u32()?,
            burst_multiplier: r.u32()?,
            whitelist: r.cidrs()?,
        };
        let backend_protocol =
            BackendProtocol::ALL.get(usize::from(r.u8()?)).ok_or("policy backend protocol")?.0;
        let has_body_limit = r.bool()?;
        let body_limit = r.u64()?;
        let body_limit = has_body_limit.then_some(body_limit);
        let (connect_timeout_s, read_timeout_s, send_timeout_s) = (r.opt_u32()?, r.opt_u32()?, r.opt_u32()?);
        let (allow_sources, deny_sources) = (r.cidrs()?, r.cidrs()?);
        let affinity = if r.bool()? {
            let name = r.str()?;
            if !is_cookie_name(name) {
                return Err("policy cookie name malformed");
            }
            let path = checked(r.opt_str()?, parse_path)?;
            let (expires_s, max_age_s) = (r.opt_u32()?, r.opt_u32()?);
            let samesite = match r.u8()? {
                0 => None,
                1 => Some(SameSite::None),
                2 => Some(SameSite::Lax),
                3 => Some(SameSite::Strict),
                _ => return Err("policy samesite"),
            };
            Some(CookieAffinity {
                name: name.to_owned(),
                path,
                expires_s,
                max_age_s,
                samesite,
                persistent: r.bool()?,
            })
        } else {
            None
        };
        let hash_by = checked(r.opt_str()?, HashKey::parse)?;
        let cors = if r.bool()? {
            let n = r.count(4)?;
            let allow_origins = (0..n).map(|_| r.str().map(str::to_owned)).collect::<Result<Vec<_>, _>>()?;
            let fields = [r.str()?, r.str()?, r.str()?];
            if fields.iter().any(|f| !f.is_empty() && !is_field_value(f))
                || allow_origins.iter().any(|o| o != "*" && parse_url(o).is_err())
            {
                return Err("policy CORS malformed");
            }
            Some(Cors {
                allow_origins,
                allow_methods: fields[0].to_owned(),
                allow_headers: fields[1].to_owned(),
                expose_headers: fields[2].to_owned(),
                allow_credentials: r.bool()?,
                max_age_s: r.u32()?,
            })
        } else {
            None
        };
        let upstream_vhost = r.opt_str()?.map(str::to_owned);
        if upstream_vhost.as_deref().is_some_and(|v| !is_field_value(v) || v.is_empty()) {
            return Err("policy vhost malformed");
        }
        let response_headers = r.headers()?;
        let request_headers = r.headers()?;
        if !r.0.is_empty() {
            return Err("policy bytes left over");
        }
        Ok(Policy {
            rewrite,
            use_regex,
            app_root,
            forwarded_prefix,
            ssl_redirect,
            force_ssl_redirect,
            preserve_trailing_slash,
            redirect,
            basic_auth,
            deny,
            limits,
            backend_protocol,
            body_limit,
            connect_timeout_s,
            read_timeout_s,
            send_timeout_s,
            allow_sources,
            deny_sources,
            affinity,
            hash_by,
            cors,
            upstream_vhost,
            response_headers,
            request_headers,
        })
    }

    /// Appends `c`'s bytes to `out`.
    pub fn encode_canary(c: &Canary, out: &mut Vec<u8>) {
        let mut w = W(out);
        w.opt_str(c.header.as_deref());
        w.opt_str(c.header_value.as_deref());
        w.opt_str(c.header_pattern.as_deref());
        w.opt_str(c.cookie.as_deref());
        w.u32(c.weight);
        w.u32(c.weight_total);
    }

    /// Reads a canary rule [`encode_canary`] wrote.
    pub fn decode_canary(b: &[u8]) -> Result<Canary, Error> {
        let mut r = R(b);
        let header = r.opt_str()?.map(str::to_owned);
        let header_value = r.opt_str()?.map(str::to_owned);
        let header_pattern = r.opt_str()?.map(str::to_owned);
        let cookie = r.opt_str()?.map(str::to_owned);
        let (weight, weight_total) = (r.u32()?, r.u32()?);
        if header.as_deref().is_some_and(|h| !is_token(h))
            || header_value.as_deref().is_some_and(|v| !is_field_value(v))
            || header_pattern.as_deref().is_some_and(|p| p.len() > 1024)
            || cookie.as_deref().is_some_and(|c| !is_cookie_name(c))
            || weight_total == 0
            || weight > weight_total
            || !r.0.is_empty()
        {
            return Err("canary rule malformed");
        }
        Ok(Canary { header, header_value, header_pattern, cookie, weight, weight_total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_mask_and_contain() {
        let c = Cidr::parse("198.18.7.9/16").unwrap();
        assert_eq!(c.to_string(), "198.18.0.0/16");
        assert!(c.contains("198.18.200.1".parse().unwrap()));
        assert!(!c.contains("198.19.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:198.18.0.1".parse().unwrap()));
        assert_eq!(Cidr::parse("2001:db8::1").unwrap().len, 128);
        for bad in ["198.18.0.0/33", "198.18.0.0/", "x", "198.18.0.0/+1", "10.0.0.0/8\n"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
        let (good, bad) = Cidr::parse_list("198.18.0.0/15, 2001:db8::/32,nope");
        assert_eq!((good.len(), bad.len()), (2, 1));
    }

    #[test]
    fn sizes_counts_and_bools_as_ingress_nginx_writes_them() {
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("8K"), Ok(8 << 10));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "m", "1.5m", "-1", "1mb", " 1m", "99999999999999g"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_count("60", 3600), Ok(60));
        assert!(parse_count("60s", 3600).is_err());
        assert!(parse_count("3601", 3600).is_err());
        assert_eq!(parse_bool("True"), Ok(true));
        assert!(parse_bool("yes").is_err());
    }

    #[test]
    fn rewrite_targets_are_text_and_groups_only() {
        let t = RewriteTarget::parse("/$2").unwrap();
        assert_eq!(t.parts, vec![RewritePart::Literal("/".into()), RewritePart::Group(2)]);
        assert_eq!(t.max_group(), 2);
        assert_eq!(RewriteTarget::parse("/api/$1/x").unwrap().to_string(), "/api/$1/x");
        // ingress-nginx's character check; nginx variables and configuration text are refused.
        for bad in ["/$host", "/x;\n}", "/a b", "/$", "/x?y=1", "", "/${1}"] {
            assert!(RewriteTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_hashes_of_each_kind() {
        assert_eq!(PasswordHash::parse("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=").unwrap().kind(), "sha1");
        let apr = PasswordHash::parse("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/").unwrap();
        assert_eq!(apr.kind(), "md5-crypt");
        let b = "$2y$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC";
        assert_eq!(PasswordHash::parse(b).unwrap().kind(), "bcrypt");
        for bad in ["plain", "$2y$05$short", "{SHA}nope", "$apr1$salt", "abJnggxhB/yWI"] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad:?}");
        }
        // Never printed.
        assert_eq!(format!("{apr:?}"), "md5-crypt");
    }

    #[test]
    fn htpasswd_files() {
        let (users, bad) = parse_htpasswd(
            "# comment\nfoo:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n\nbar:plain\nfoo:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\nnocolon\n",
        );
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].0, "foo");
        assert_eq!(bad.len(), 3, "{bad:?}");
    }

    #[test]
    fn a_bcrypt_hash_with_a_multibyte_character_is_refused_not_a_panic() {
        // Found by the `htpasswd` fuzz target: the cost's digits were sliced as `str`, and a
        // character of several bytes there (U+FFFD, 3 bytes, after lossy UTF-8) panicked
        // between its bytes: a Secret could bring control down.
        let tail = "$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy";
        for cost in ["0\u{fffd}", "\u{e9}", "\u{fffd}4", "1\u{e9}"] {
            // The length of a bcrypt hash (60 bytes), so that the checks after the length's run.
            let hash = format!("$2y${cost}{}", &tail[cost.len() - 2..]);
            assert_eq!(hash.len(), 60);
            assert!(PasswordHash::parse(&hash).is_err(), "{hash}");
            let (users, bad) = parse_htpasswd(&format!("alice:{hash}\n"));
            assert!(users.is_empty() && bad.len() == 1, "{bad:?}");
        }
        // The real thing still parses, and costs out of 4..=31 are refused.
        assert!(PasswordHash::parse(&format!("$2y$04{tail}")).is_ok());
        assert!(PasswordHash::parse(&format!("$2y$03{tail}")).is_err());
        assert!(PasswordHash::parse(&format!("$2y$32{tail}")).is_err());
    }

    #[test]
    fn hash_keys_name_known_variables_only() {
        let k = HashKey::parse("$request_uri").unwrap();
        assert_eq!(k.parts, vec![HashPart::RequestUri]);
        let k = HashKey::parse("u-${http_x_user}$cookie_sid").unwrap();
        assert_eq!(
            k.parts,
            vec![
                HashPart::Literal("u-".into()),
                HashPart::Header("x-user".into()),
                HashPart::Cookie("sid".into())
            ]
        );
        assert!(HashKey::parse("$remote_user").is_err());
        assert!(HashKey::parse("$request_uri; }").is_err());
    }

    #[test]
    fn canary_votes_in_ingress_nginx_order() {
        let c = Canary { header: Some("x-canary".into()), ..Canary::default() };
        assert_eq!(c.header_vote(Some("always"), false), CanaryVote::Canary);
        assert_eq!(c.header_vote(Some("never"), false), CanaryVote::Main);
        assert_eq!(c.header_vote(Some("other"), false), CanaryVote::Abstain);
        assert_eq!(c.header_vote(None, false), CanaryVote::Abstain);
        let v = Canary { header_value: Some("yes".into()), ..c.clone() };
        assert_eq!(v.header_vote(Some("always"), false), CanaryVote::Abstain);
        assert_eq!(v.header_vote(Some("yes"), false), CanaryVote::Canary);
        let w = Canary { weight: 30, ..Canary::default() };
        assert!(w.weight_picks(29) && !w.weight_picks(30));
    }

    #[test]
    fn cors_origins() {
        let c = Cors {
            allow_origins: vec!["https://a.com".into(), "https://*.b.com".into()],
            allow_methods: DEFAULT_CORS_METHODS.into(),
            allow_headers: DEFAULT_CORS_HEADERS.into(),
            expose_headers: String::new(),
            allow_credentials: true,
            max_age_s: DEFAULT_CORS_MAX_AGE_S,
        };
        assert_eq!(c.allowed("https://a.com"), Some("https://a.com"));
        assert_eq!(c.allowed("https://x.b.com"), Some("https://x.b.com"));
        assert_eq!(c.allowed("https://b.com"), None);
        assert_eq!(c.allowed("http://a.com"), None);
    }

    fn full_policy() -> Policy {
        Policy {
            rewrite: Some(RewriteTarget::parse("/$2").unwrap()),
            use_regex: true,
            app_root: Some("/app".into()),
            forwarded_prefix: Some("/shop".into()),
            ssl_redirect: false,
            force_ssl_redirect: true,
            preserve_trailing_slash: true,
            redirect: Some(Redirect { location: "https://a.example.com/x".into(), code: 308 }),
            basic_auth: Some(BasicAuth {
                realm: "Shop".into(),
                users: vec![
                    ("a".into(), PasswordHash::parse("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=").unwrap()),
                    ("b".into(), PasswordHash::parse("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/").unwrap()),
                ],
            }),
            deny: Some("why".into()),
            limits: Limits {
                rps: Some(10),
                rpm: None,
                connections: Some(3),
                burst_multiplier: 5,
                whitelist: vec![Cidr::parse("198.18.0.0/15").unwrap()],
            },
            backend_protocol: BackendProtocol::Grpc,
            body_limit: Some(0),
            connect_timeout_s: Some(1),
            read_timeout_s: Some(2),
            send_timeout_s: None,
            allow_sources: vec![Cidr::parse("2001:db8::/32").unwrap()],
            deny_sources: vec![Cidr::parse("198.18.0.9").unwrap()],
            affinity: Some(CookieAffinity {
                name: "route".into(),
                path: Some("/".into()),
                expires_s: Some(60),
                max_age_s: None,
                samesite: Some(SameSite::Lax),
                persistent: true,
            }),
            hash_by: Some(HashKey::parse("$request_uri$http_x_user").unwrap()),
            cors: Some(Cors {
                allow_origins: vec!["https://a.com".into()],
                allow_methods: "GET".into(),
                allow_headers: "X-A".into(),
                expose_headers: String::new(),
                allow_credentials: false,
                max_age_s: 5,
            }),
            upstream_vhost: Some("internal.example.com".into()),
            response_headers: vec![Header::new("X-A", "1").unwrap()],
            request_headers: vec![Header::new("X-B", "2").unwrap()],
        }
    }

    #[test]
    fn policies_round_trip_and_bad_bytes_are_errors() {
        for p in [Policy::default(), full_policy()] {
            let mut b = Vec::new();
            codec::encode(&p, &mut b);
            assert_eq!(codec::decode(&b), Ok(p.clone()));
            // Every truncation and a byte more are errors, never a panic.
            for n in 0..b.len() {
                assert!(codec::decode(&b[..n]).is_err(), "{n}");
            }
            b.push(0);
            assert!(codec::decode(&b).is_err());
        }
        let c = Canary {
            header: Some("x-canary".into()),
            cookie: Some("c".into()),
            weight: 5,
            ..Canary::default()
        };
        let mut b = Vec::new();
        codec::encode_canary(&c, &mut b);
        assert_eq!(codec::decode_canary(&b), Ok(c));
    }

    #[test]
    fn a_policy_value_that_fails_its_grammar_is_not_decoded() {
        let p = Policy {
            rewrite: Some(RewriteTarget { parts: vec![RewritePart::Literal("/x;\n}".into())] }),
            ..Policy::default()
        };
        let mut b = Vec::new();
        codec::encode(&p, &mut b);
        assert!(codec::decode(&b).is_err());
    }

    #[test]
    fn header_values_cannot_end_a_line() {
        assert!(Header::new("X-A", "b c").is_ok());
        assert!(Header::new("X-A", "b\r\nX-Evil: 1").is_err());
        assert!(Header::new("X A", "b").is_err());
        assert!(parse_path("/ok?x=1").is_ok());
        assert!(parse_path("/no\nway").is_err());
        assert!(parse_url("https://example.com/x").is_ok());
        assert!(parse_url("javascript:alert(1)").is_err());
    }
}
