//! HTTP Basic authentication (RFC 7617) for `auth-type: basic`: the `Authorization` field
//! parsed, the password checked against the htpasswd Secret's hash, the answer cached.
//!
//! # What the proxy calls
//! - Per generation, per Ingress with [`BasicAuth`]: [`BasicAuthCheck::new`] (decodes every
//!   hash once, allocates).
//! - Per worker, once: [`AuthCache::new`] (its table allocated there, never again).
//! - Per request on such an Ingress: [`BasicAuthCheck::verify`] with the request's
//!   `Authorization` value (`RequestHead::field("authorization")`), the worker's cache and
//!   `now_ns`. [`AuthOutcome::Allowed`]: proxy, without the `Authorization` field (as
//!   ingress-nginx does). [`AuthOutcome::Denied`]: 401 with the field
//!   [`BasicAuthCheck::write_challenge`] writes. [`AuthOutcome::Busy`]: 503 (see below).
//!
//! # Hashes
//! bcrypt (`$2a$`, `$2b$`, `$2y$`, through the `bcrypt` crate's raw function: the password
//! NUL-terminated and cut to 72 bytes, as OpenBSD and crypt_blowfish do); MD5-crypt (`$1$`)
//! and Apache's variant (`$apr1$`), written here from Poul-Henning Kamp's description in
//! FreeBSD's `crypt-md5.c` (1,000 rounds of MD5, crypt's own base64); `{SHA}` (base64 of the
//! password's SHA-1, no salt). The computed hash is compared with the stored one in constant
//! time (`ct_eq` over the encoded hash, as `crypt(3)` users compare strings).
//!
//! # Why a cache, and what it costs
//! bcrypt at htpasswd's default cost 5 takes a few milliseconds; at cost 10 to 12, tens to
//! hundreds — and a worker runs to completion, so every other connection of the worker waits
//! meanwhile. A browser sends the same `Authorization` value with every request, so the
//! verdict is kept per worker ([`AuthCache`]): a fixed table of 128-bit tags — two keyed
//! SipHashes of (the user's identity, the whole field value) — with the verdict and its
//! expiry. The value itself (a password, in base64) is never stored. The field is decoded and
//! its user looked up before the cache (both cheap); a value that is malformed or names no
//! user is answered without it.
//! - **Allowed** verdicts are kept [`AuthCacheConfig::allow_ttl_ns`] (5 min). A user's
//!   identity is a hash of its name and stored hash, so a password changed or a user removed
//!   in the Secret no longer matches what was cached, from the next generation on, while the
//!   other users' verdicts stay (adding a user costs nobody a new hash). The cost: a stolen
//!   field value keeps working as long as the password does, which is Basic
//!   authentication's nature with or without a cache.
//! - **Denied** verdicts are kept [`AuthCacheConfig::deny_ttl_ns`] (1 min), so a client
//!   that repeats a wrong value (a script with an old password, a retrying client) costs one
//!   hash per minute, not one per request. A denied verdict never displaces an allowed one
//!   that is still live, so a flood of wrong guesses cannot evict the users who logged in.
//! - **Distinct** wrong guesses each cost a hash, so the slow hashes a worker computes are
//!   budgeted ([`AuthCacheConfig::work_per_s`], a token bucket in units of about one
//!   MD5-crypt; bcrypt of cost `c` counts `2^c`): when the budget is spent, a request that
//!   would need a slow hash gets [`AuthOutcome::Busy`] (503) instead of stalling the worker.
//!   Users already in the cache are not affected; a user who logs in during a guessing flood
//!   may be. A hash dearer than the whole burst ([`AuthCacheConfig::work_burst`]: bcrypt over
//!   cost 14 with the defaults) is never computed: its user always gets Busy. One such hash
//!   would hold the worker for a minute (cost 20) or days (cost 31). `{SHA}` is never budgeted (one SHA-1 costs less than the lookup).
//!
//! # Known limits
//! - Like nginx, a user name not in the Secret is answered without computing a hash, so the
//!   response time tells whether a user exists. Hashing a decoy would hide it at the price of
//!   letting any client spend the worker's time; nginx makes the same choice.
//! - `$2a$` hashes are checked as `$2b$`: crypt_blowfish's countermeasure for `$2a$` hashes
//!   of non-ASCII passwords made by its buggy versions (before 2011) is not reproduced.
//! - RFC 7617 §2: user and password may not contain control characters; a value that decodes
//!   to one is refused (nginx would try it). Credentials over [`MAX_CREDENTIALS_BYTES`] are
//!   refused. The charset is not interpreted: the bytes are compared as sent.
//! - The budget counts estimated work, not time (there is no clock here).
//!
//! Hot path: [`BasicAuthCheck::verify`] allocates nothing. No `unsafe`.

use std::fmt;

use md5::{Digest as _, Md5};
use sha1::Sha1;
use sluice_model::policy::{BasicAuth, PasswordHash};

use super::{Sip, SipKey, TooSmall, Writer, ct_eq};

/// The longest decoded `user:password` accepted (longer: [`DenyReason::Malformed`]).
pub const MAX_CREDENTIALS_BYTES: usize = 1024;

/// crypt(3)'s base64 alphabet (MD5-crypt).
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// bcrypt's base64 alphabet (the same characters in another order).
const BCRYPT64: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Why a request is not authenticated (all answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No `Authorization` field.
    Missing,
    /// Not `Basic` with base64 of `user:password` (another scheme, bad base64, no colon, a
    /// control character, too long).
    Malformed,
    /// No such user.
    UnknownUser,
    /// The password does not match.
    WrongPassword,
    /// A denied verdict from the cache.
    Cached,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Proxy it (without its `Authorization` field).
    Allowed,
    /// 401, with [`BasicAuthCheck::write_challenge`]'s field.
    Denied(DenyReason),
    /// The worker's budget of slow hashes is spent: 503, try again shortly.
    Busy,
}

/// Splits an `Authorization` value of the Basic scheme into user and password, decoded into
/// `buf`. `None` for anything else: another scheme, bad base64, no colon, control characters
/// (RFC 7617 §2), longer than [`MAX_CREDENTIALS_BYTES`].
///
/// The scheme is case-insensitive (RFC 9110 §11.1) and followed by one or more spaces; the
/// base64 is the standard alphabet with its padding optional (as nginx decodes it).
pub fn parse_basic<'b>(
    value: &[u8],
    buf: &'b mut [u8; MAX_CREDENTIALS_BYTES],
) -> Option<(&'b [u8], &'b [u8])> {
    let value = trim(value);
    if value.len() < 6 || !value[..5].eq_ignore_ascii_case(b"basic") || !matches!(value[5], b' ' | b'\t') {
        return None;
    }
    let b64 = trim(&value[5..]);
    let n = sluice_model::policy::base64_into(b64, buf)?;
    let decoded = &buf[..n];
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((&decoded[..colon], &decoded[colon + 1..]))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// bcrypt's base64 of `bytes` (big-endian bit groups, no padding) into `out`; its length.
fn encode_bcrypt64(bytes: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out[n] = BCRYPT64[((v >> (18 - 6 * i)) & 0x3f) as usize];
            n += 1;
        }
    }
    n
}

/// Decodes bcrypt's base64 (a salt's 22 characters → 16 bytes; trailing bits dropped).
fn decode_bcrypt64(s: &[u8], out: &mut [u8]) -> Option<()> {
    let (mut acc, mut bits, mut n) = (0u32, 0, 0);
    for &c in s {
        let v = BCRYPT64.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if n < out.len() {
                out[n] = (acc >> bits) as u8;
            }
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    (n >= out.len()).then_some(())
}

/// One user's stored hash, decoded once per generation.
#[derive(Clone)]
enum Verifier {
    Bcrypt { cost: u32, salt: [u8; 16], hash: [u8; 31] },
    Md5 { apr1: bool, salt: [u8; 8], salt_len: usize, hash: [u8; 22] },
    Sha1([u8; 20]),
}

impl Verifier {
    fn new(h: &PasswordHash) -> Option<Verifier> {
        match h {
            PasswordHash::Bcrypt(s) => {
                // `$2y$NN$` + 22 salt + 31 hash, checked by `PasswordHash::parse`.
                let b = s.as_bytes();
                if b.len() != 60 {
                    return None;
                }
                let cost: u32 = s.get(4..6)?.parse().ok()?;
                if !(4..=31).contains(&cost) {
                    return None;
                }
                let mut salt = [0; 16];
                decode_bcrypt64(&b[7..29], &mut salt)?;
                let mut hash = [0; 31];
                hash.copy_from_slice(&b[29..60]);
                Some(Verifier::Bcrypt { cost, salt, hash })
            }
            PasswordHash::Md5Crypt { magic, salt, hash } => {
                let (sb, hb) = (salt.as_bytes(), hash.as_bytes());
                if sb.len() > 8 || hb.len() != 22 {
                    return None;
                }
                let mut s = [0; 8];
                s[..sb.len()].copy_from_slice(sb);
                let mut h = [0; 22];
                h.copy_from_slice(hb);
                Some(Verifier::Md5 { apr1: magic == "apr1", salt: s, salt_len: sb.len(), hash: h })
            }
            PasswordHash::Sha1(d) => Some(Verifier::Sha1(*d)),
        }
    }

    /// Estimated cost in budget units (one unit: about one MD5-crypt).
    fn work(&self) -> u64 {
        match self {
            Verifier::Bcrypt { cost, .. } => 1 << cost,
            Verifier::Md5 { .. } => 1,
            Verifier::Sha1(_) => 0,
        }
    }

    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Verifier::Bcrypt { cost, salt, hash } => {
                let out = bcrypt_raw(*cost, *salt, password);
                let mut enc = [0u8; 32];
                let n = encode_bcrypt64(&out[..23], &mut enc);
                ct_eq(&enc[..n], hash)
            }
            Verifier::Md5 { apr1, salt, salt_len, hash } => {
                let magic: &[u8] = if *apr1 { b"$apr1$" } else { b"$1$" };
                ct_eq(&md5_crypt(password, magic, &salt[..*salt_len]), hash)
            }
            Verifier::Sha1(d) => ct_eq(&Sha1::digest(password), d),
        }
    }
}

/// bcrypt's 24 output bytes for `password` (NUL-terminated and cut to 72 bytes, as OpenBSD's
/// `bcrypt` and crypt_blowfish do).
fn bcrypt_raw(cost: u32, salt: [u8; 16], password: &[u8]) -> [u8; 24] {
    let mut key = [0u8; 73];
    let n = password.len().min(72);
    key[..n].copy_from_slice(&password[..n]);
    // key[n] is the terminating NUL; a 72-byte password has none within the 72 used.
    let used = (n + 1).min(72);
    bcrypt::bcrypt(cost, salt, &key[..used])
}

/// MD5-crypt (FreeBSD `crypt-md5.c`, Poul-Henning Kamp) with its magic (`$1$` or Apache's
/// `$apr1$`, which differs only there): the 22 characters after the salt.
pub fn md5_crypt(password: &[u8], magic: &[u8], salt: &[u8]) -> [u8; 22] {
    let salt = &salt[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic);
    ctx.update(salt);
    let alt = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    // "Then something really weird...": per bit of the length, a NUL byte or the first
    // character of the password.
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    // 1,000 rounds "to slow things down".
    for r in 0..1000 {
        let mut c = Md5::new();
        if r & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(password);
        }
        if r & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize().into();
    }
    let mut out = [0u8; 22];
    let mut n = 0;
    let mut to64 = |mut v: u32, count: usize| {
        for _ in 0..count {
            out[n] = CRYPT64[(v & 0x3f) as usize];
            n += 1;
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    to64((f(0) << 16) | (f(6) << 8) | f(12), 4);
    to64((f(1) << 16) | (f(7) << 8) | f(13), 4);
    to64((f(2) << 16) | (f(8) << 8) | f(14), 4);
    to64((f(3) << 16) | (f(9) << 8) | f(15), 4);
    to64((f(4) << 16) | (f(10) << 8) | f(5), 4);
    to64(f(11), 2);
    out
}

/// One Ingress's Basic authentication, ready to check requests: the realm, and the users
/// sorted by name with their hashes decoded. Made per generation; shared by the requests of a
/// worker (or, being `Sync`, of all).
#[derive(Clone)]
pub struct BasicAuthCheck {
    realm: Box<str>,
    users: Box<[User]>,
}

#[derive(Clone)]
struct User {
    name: Box<[u8]>,
    verifier: Verifier,
    /// A fingerprint of the name and the stored hash: what a cached verdict is about.
    identity: [u8; 8],
}

impl fmt::Debug for BasicAuthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes can be attacked offline: never printed.
        f.debug_struct("BasicAuthCheck")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .finish()
    }
}

impl BasicAuthCheck {
    /// Decodes every hash once. A user whose hash cannot be decoded (which
    /// `PasswordHash::parse` would not have let through) is left out: that user cannot log
    /// in.
    pub fn new(auth: &BasicAuth) -> BasicAuthCheck {
        let mut users: Vec<User> = Vec::with_capacity(auth.users.len());
        for (user, hash) in &auth.users {
            let Some(verifier) = Verifier::new(hash) else { continue };
            // A fixed key: it is only a fingerprint; the cache hashes it again with its secret.
            let mut id = Sip::new(&SipKey::new(*b"sluice basicauth"));
            id.write_field(user.as_bytes());
            id.write_field(hash_text(hash).as_bytes());
            users.push(User { name: user.as_bytes().into(), verifier, identity: id.finish().to_le_bytes() });
        }
        // htpasswd and nginx take a user's first line (sort_by is stable).
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users.dedup_by(|b, a| a.name == b.name);
        BasicAuthCheck { realm: auth.realm.as_str().into(), users: users.into() }
    }

    /// The realm of the challenge.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Checks a request's `Authorization` value (`None`: the request has none), through the
    /// worker's cache. Allocates nothing; computes at most one password hash.
    pub fn verify(&self, authorization: Option<&[u8]>, cache: &mut AuthCache, now_ns: u64) -> AuthOutcome {
        let Some(value) = authorization else { return AuthOutcome::Denied(DenyReason::Missing) };
        let mut buf = [0u8; MAX_CREDENTIALS_BYTES];
        let Some((user, password)) = parse_basic(value, &mut buf) else {
            return AuthOutcome::Denied(DenyReason::Malformed);
        };
        let Some(user) = self.user(user) else { return AuthOutcome::Denied(DenyReason::UnknownUser) };
        let tag = cache.tag(&user.identity, value);
        if let Some(allowed) = cache.lookup(tag, now_ns) {
            cache.stats.hits += 1;
            return if allowed { AuthOutcome::Allowed } else { AuthOutcome::Denied(DenyReason::Cached) };
        }
        cache.stats.misses += 1;
        let verifier = &user.verifier;
        if !cache.spend(verifier.work(), now_ns) {
            cache.stats.busy += 1;
            return AuthOutcome::Busy;
        }
        cache.stats.hashes += 1;
        let ok = verifier.matches(password);
        cache.insert(tag, ok, now_ns);
        if ok { AuthOutcome::Allowed } else { AuthOutcome::Denied(DenyReason::WrongPassword) }
    }

    /// Whether `user` with `password` matches the stored hash, without cache or budget (for
    /// tests and tools; the proxy calls [`BasicAuthCheck::verify`]).
    pub fn check_password(&self, user: &[u8], password: &[u8]) -> bool {
        self.user(user).is_some_and(|u| u.verifier.matches(password))
    }

    fn user(&self, name: &[u8]) -> Option<&User> {
        self.users.binary_search_by(|u| (*u.name).cmp(name)).ok().map(|i| &self.users[i])
    }

    /// Writes the 401's challenge field line, `WWW-Authenticate: Basic realm="…"` and CRLF,
    /// into `out`; its length.
    pub fn write_challenge(&self, out: &mut [u8]) -> Result<usize, TooSmall> {
        write_challenge(&self.realm, out)
    }
}

/// The text a hash was written as, for a user's identity (`PasswordHash` shows only its kind).
fn hash_text(h: &PasswordHash) -> String {
    match h {
        PasswordHash::Bcrypt(s) => s.clone(),
        PasswordHash::Md5Crypt { magic, salt, hash } => format!("${magic}${salt}${hash}"),
        PasswordHash::Sha1(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Writes `WWW-Authenticate: Basic realm="<realm>"` and CRLF into `out` (RFC 7617 §2); its
/// length. The realm is a quoted-string: `"` and `\` are escaped, control characters left out
/// (control's `is_realm` refuses all three; this keeps the field well formed whatever it gets).
pub fn write_challenge(realm: &str, out: &mut [u8]) -> Result<usize, TooSmall> {
    let mut w = Writer::new(out);
    w.put(b"WWW-Authenticate: Basic realm=\"")?;
    for &b in realm.as_bytes() {
        match b {
            b'"' | b'\\' => w.put(&[b'\\', b])?,
            0..0x20 | 0x7f => {}
            _ => w.put(&[b])?,
        }
    }
    w.put(b"\"\r\n")?;
    Ok(w.len())
}

/// The sizes and lifetimes of a worker's [`AuthCache`], and its budget of slow hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCacheConfig {
    /// Entries (rounded up to a multiple of 4, a power of two): 32 bytes each.
    pub entries: usize,
    /// How long an allowed verdict is kept.
    pub allow_ttl_ns: u64,
    /// How long a denied verdict is kept.
    pub deny_ttl_ns: u64,
    /// Slow-hash budget refilled per second, in units of about one MD5-crypt (bcrypt of cost
    /// `c`: `2^c` units).
    pub work_per_s: u64,
    /// The most the budget holds.
    pub work_burst: u64,
}

impl AuthCacheConfig {
    /// 4,096 entries (128 KiB), allowed 5 min, denied 1 min; 8,192 units per second and at
    /// most 16,384 at once: about eight bcrypt checks of cost 10, 256 of cost 5 or 8,192
    /// MD5-crypt ones per second per worker.
    pub const DEFAULT: AuthCacheConfig = AuthCacheConfig {
        entries: 4096,
        allow_ttl_ns: 300 * 1_000_000_000,
        deny_ttl_ns: 60 * 1_000_000_000,
        work_per_s: 8192,
        work_burst: 16_384,
    };
}

impl Default for AuthCacheConfig {
    fn default() -> AuthCacheConfig {
        AuthCacheConfig::DEFAULT
    }
}

/// What a worker's [`AuthCache`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Verdicts found in the cache.
    pub hits: u64,
    /// Requests that were not.
    pub misses: u64,
    /// Password hashes computed.
    pub hashes: u64,
    /// Requests answered [`AuthOutcome::Busy`].
    pub busy: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    tag: [u64; 2],
    /// 0: empty.
    expires_ns: u64,
    allowed: bool,
}

/// A worker's verdicts (see the module documentation): a set-associative table of 4-entry
/// buckets, allocated once, and the budget of slow hashes. Not shared between workers (no
/// lock); each worker hashes a value once.
pub struct AuthCache {
    config: AuthCacheConfig,
    keys: [SipKey; 2],
    entries: Box<[Entry]>,
    bucket_mask: usize,
    /// The budget: may go below zero by one verification's work (a verification is never cut
    /// in half), then nothing slow is done until it is back to zero or more.
    budget: i64,
    budget_at_ns: u64,
    stats: AuthStats,
}

impl fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCache").field("config", &self.config).field("stats", &self.stats).finish()
    }
}

const WAYS: usize = 4;

impl AuthCache {
    /// A cache for one worker; `key` is the gateway's secret (tags cannot be predicted by a
    /// client, so no client can aim its values at another's entries). Allocates its table.
    pub fn new(config: AuthCacheConfig, key: &SipKey) -> AuthCache {
        let buckets = (config.entries.max(WAYS) / WAYS).next_power_of_two();
        AuthCache {
            config,
            keys: [key.derive(b"auth cache a"), key.derive(b"auth cache b")],
            entries: vec![Entry::default(); buckets * WAYS].into_boxed_slice(),
            bucket_mask: buckets - 1,
            budget: i64::try_from(config.work_burst).unwrap_or(i64::MAX),
            budget_at_ns: 0,
            stats: AuthStats::default(),
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> AuthStats {
        self.stats
    }

    /// Forgets every verdict (the budget is kept).
    pub fn clear(&mut self) {
        self.entries.fill(Entry::default());
    }

    fn tag(&self, identity: &[u8; 8], value: &[u8]) -> [u64; 2] {
        let mut tag = [0; 2];
        for (t, k) in tag.iter_mut().zip(&self.keys) {
            let mut h = Sip::new(k);
            h.write(identity);
            h.write(value);
            *t = h.finish();
        }
        tag
    }

    fn bucket(&mut self, tag: [u64; 2]) -> &mut [Entry] {
        let b = (tag[0] as usize) & self.bucket_mask;
        &mut self.entries[b * WAYS..(b + 1) * WAYS]
    }

    fn lookup(&mut self, tag: [u64; 2], now_ns: u64) -> Option<bool> {
        self.bucket(tag).iter().find(|e| e.tag == tag && e.expires_ns > now_ns).map(|e| e.allowed)
    }

    fn insert(&mut self, tag: [u64; 2], allowed: bool, now_ns: u64) {
        let ttl = if allowed { self.config.allow_ttl_ns } else { self.config.deny_ttl_ns };
        let new = Entry { tag, expires_ns: now_ns.saturating_add(ttl).max(1), allowed };
        let bucket = self.bucket(tag);
        let live = |e: &Entry| e.expires_ns > now_ns;
        // The same tag, else a dead entry, else the denied entry nearest its end, else (only
        // for an allowed verdict) the allowed entry nearest its end.
        let slot = bucket
            .iter()
            .position(|e| e.tag == tag && live(e))
            .or_else(|| bucket.iter().position(|e| !live(e)))
            .or_else(|| (0..WAYS).filter(|&i| !bucket[i].allowed).min_by_key(|&i| bucket[i].expires_ns))
            .or_else(|| allowed.then(|| (0..WAYS).min_by_key(|&i| bucket[i].expires_ns)).flatten());
        if let Some(i) = slot {
            bucket[i] = new;
        }
    }

    /// Takes `work` units from the budget if it is not in debt.
    fn spend(&mut self, work: u64, now_ns: u64) -> bool {
        if work == 0 {
            return true;
        }
        // A hash dearer than the whole burst is never computed: the debt rule below lets one
        // hash through whatever its cost, and a bcrypt of cost 20 (a minute of a core) or 31
        // (days) would stall the worker and every connection on it. Found by the `htpasswd`
        // fuzz target (a `$2y$20$` line): such a user gets Busy (503), never a hash.
        if work > self.config.work_burst {
            return false;
        }
        let elapsed = now_ns.saturating_sub(self.budget_at_ns);
        let refill = (u128::from(elapsed) * u128::from(self.config.work_per_s) / 1_000_000_000) as u64;
        let burst = i64::try_from(self.config.work_burst).unwrap_or(i64::MAX);
        if refill > 0 {
            // Advance the clock only by the time the refill accounts for, so fractions carry.
            let used_ns = if self.config.work_per_s == 0 {
                elapsed
            } else {
                (u128::from(refill) * 1_000_000_000 / u128::from(self.config.work_per_s)) as u64
            };
            self.budget_at_ns = self.budget_at_ns.saturating_add(used_ns);
            self.budget = self.budget.saturating_add(i64::try_from(refill).unwrap_or(i64::MAX)).min(burst);
        } else if now_ns < self.budget_at_ns {
            self.budget_at_ns = now_ns;
        }
        if self.budget >= burst {
            // Full: the refill clock starts now.
            self.budget_at_ns = self.budget_at_ns.max(now_ns);
        }
        if self.budget < 0 {
            return false;
        }
        self.budget -= i64::try_from(work).unwrap_or(i64::MAX);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated with `htpasswd` (apache2-utils 2.4) and `openssl passwd` (OpenSSL 3) on
    /// 2026-12-05; the password beside each.
    const FIXTURES: &[(&str, &[u8], &str)] = &[
        ("alice", b"secret", "$2y$04$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy"),
        ("bob", b"correct horse battery staple", "$2y$05$pn6P.tUHjIXD7/9Q5l5t1uqiGqZycTuukUTpfpVFKnfCEr2DYfWHO"),
        // htpasswd -nbB -C 4 long $(80 × 'b'): bcrypt uses the first 72 bytes.
        (
            "long",
            b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "$2y$04$OqJRWaKIrFbCQ4I78nx3Vu9nyLv/SiNFjU7D.K.WyPNLBFmO3PeBG",
        ),
        ("carol", b"pw", "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM="),
        ("eve", b"", "{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
        ("dave", "pässwörd".as_bytes(), "$apr1$FcNwdQJf$mgM71L6RciQbTCt/NiLMj0"),
        ("frank", b"password", "$apr1$8Rxn8EFj$2B3MigUoSsJDzu3tDXLv6."),
        // openssl passwd -apr1 -salt r31..... password
        ("gina", b"password", "$apr1$r31.....$ARC3pREO82RIm0aQ2zszC0"),
        // openssl passwd -apr1 -salt saltsalt 'p@ss w:rd'
        ("hank", b"p@ss w:rd", "$apr1$saltsalt$YMdOzL0vPGuyYiBiwA417."),
        // openssl passwd -apr1 -salt 12345678 ''
        ("ivy", b"", "$apr1$12345678$sHuPAw7VA9xjRbJz7zKV7/"),
        // openssl passwd -1 -salt abc hello
        ("jack", b"hello", "$1$abc$jWy0FsfCoVBK.I85XpXf30"),
        // openssl passwd -1 -salt '' x
        ("kate", b"x", "$1$$LP5.V3ajGqHDdXW6XwZQy."),
        // openssl passwd -1 -salt 'Zx.9/ab' $(100 × 'a')
        (
            "liam",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "$1$Zx.9/ab$nBXezgkn7molj.jRgcUR21",
        ),
        // openssl passwd -apr1 -salt 'a.b/C9' 'pässwörd'
        ("mia", "pässwörd".as_bytes(), "$apr1$a.b/C9$7f.fkLz6YcXHHN.OgeVjy1"),
        // alice's hash under the other bcrypt prefixes: the same algorithm for these passwords.
        ("nora", b"secret", "$2a$04$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy"),
        ("otto", b"secret", "$2b$04$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy"),
    ];

    fn check() -> BasicAuthCheck {
        let users =
            FIXTURES.iter().map(|(u, _, h)| (u.to_string(), PasswordHash::parse(h).unwrap())).collect();
        BasicAuthCheck::new(&BasicAuth { realm: "Staff only".into(), users })
    }

    fn header(user: &str, password: &[u8]) -> Vec<u8> {
        let mut raw = user.as_bytes().to_vec();
        raw.push(b':');
        raw.extend_from_slice(password);
        let mut v = b"Basic ".to_vec();
        v.extend_from_slice(encode_base64(&raw).as_bytes());
        v
    }

    fn encode_base64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in bytes.chunks(3) {
            let b = [c[0], c.get(1).copied().unwrap_or(0), c.get(2).copied().unwrap_or(0)];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                s.push(if i <= c.len() { char::from(A[((v >> (18 - 6 * i)) & 63) as usize]) } else { '=' });
            }
        }
        s
    }

    #[test]
    fn every_fixture_verifies_and_a_wrong_password_does_not() {
        let c = check();
        for (user, password, hash) in FIXTURES {
            assert!(c.check_password(user.as_bytes(), password), "{user} {hash}");
            // One bit off within the bytes bcrypt reads (or one byte more than none).
            let mut wrong = password.to_vec();
            match wrong.first_mut() {
                Some(b) => *b ^= 1,
                None => wrong.push(b'!'),
            }
            assert!(!c.check_password(user.as_bytes(), &wrong), "{user} {hash} with a wrong password");
        }
        assert!(!c.check_password(b"nobody", b"secret"));
        // bcrypt reads 72 bytes: a longer password agreeing on them is the same password.
        assert!(c.check_password(b"long", &[b'b'; 72]));
        assert!(!c.check_password(b"long", &[b'b'; 71]));
    }

    #[test]
    fn md5_crypt_by_hand() {
        assert_eq!(&md5_crypt(b"password", b"$apr1$", b"r31....."), b"ARC3pREO82RIm0aQ2zszC0");
        assert_eq!(&md5_crypt(b"hello", b"$1$", b"abc"), b"jWy0FsfCoVBK.I85XpXf30");
        // The salt is at most 8 characters.
        assert_eq!(md5_crypt(b"x", b"$1$", b"abcdefghij"), md5_crypt(b"x", b"$1$", b"abcdefgh"));
    }

    #[test]
    fn authorization_values() {
        let mut buf = [0; MAX_CREDENTIALS_BYTES];
        type Row = (&'static [u8], Option<(&'static [u8], &'static [u8])>);
        let cases: &[Row] = &[
            (b"Basic YWxpY2U6c2VjcmV0", Some((b"alice", b"secret"))),
            (b"basic YWxpY2U6c2VjcmV0", Some((b"alice", b"secret"))),
            (b"BASIC   YWxpY2U6c2VjcmV0  ", Some((b"alice", b"secret"))),
            // Colons after the first belong to the password.
            (b"Basic dTpwOnE=", Some((b"u", b"p:q"))),
            (b"Basic dTpwOnE", Some((b"u", b"p:q"))),
            (b"Basic Og==", Some((b"", b""))),
            (b"Basic YWxpY2U=", None),         // no colon
            (b"Basic YWxp!2U6c2VjcmV0", None), // not base64
            (b"Basic dTpwOnE==", None),        // wrong padding
            (b"Basic dTpwOn=E", None),         // padding inside
            (b"Basic Y", None),                // a lone sextet
            (b"Bearer YWxpY2U6c2VjcmV0", None),
            (b"BasicYWxpY2U6c2VjcmV0", None),
            (b"Basic", None),
            (b"Basic dTpwAHE=", None), // u:p\0q: a control character
            (b"", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_basic(value, &mut buf), *want, "{}", String::from_utf8_lossy(value));
        }
        let long = header("u", &[b'p'; MAX_CREDENTIALS_BYTES]);
        assert_eq!(parse_basic(&long, &mut buf), None);
        let fits = header("u", &[b'p'; MAX_CREDENTIALS_BYTES - 2]);
        assert!(parse_basic(&fits, &mut buf).is_some());
    }

    #[test]
    fn outcomes_through_the_cache() {
        let c = check();
        let mut cache = AuthCache::new(AuthCacheConfig::DEFAULT, &SipKey::new([7; 16]));
        let t0 = 1_000_000_000;
        let cases: &[(Option<Vec<u8>>, AuthOutcome)] = &[
            (None, AuthOutcome::Denied(DenyReason::Missing)),
            (Some(b"Bearer x".to_vec()), AuthOutcome::Denied(DenyReason::Malformed)),
            (Some(header("nobody", b"x")), AuthOutcome::Denied(DenyReason::UnknownUser)),
            (Some(header("alice", b"secret")), AuthOutcome::Allowed),
            (Some(header("alice", b"Secret")), AuthOutcome::Denied(DenyReason::WrongPassword)),
            (Some(header("frank", b"password")), AuthOutcome::Allowed),
            (Some(header("carol", b"pw")), AuthOutcome::Allowed),
            (Some(header("kate", b"x")), AuthOutcome::Allowed),
        ];
        for (value, want) in cases {
            assert_eq!(c.verify(value.as_deref(), &mut cache, t0), *want, "{value:?}");
        }
        let hashes = cache.stats().hashes;
        assert_eq!(hashes, 5);
        // Again: the slow ones come from the cache, a wrong one too.
        assert_eq!(c.verify(Some(&header("alice", b"secret")), &mut cache, t0 + 1), AuthOutcome::Allowed);
        assert_eq!(
            c.verify(Some(&header("alice", b"Secret")), &mut cache, t0 + 1),
            AuthOutcome::Denied(DenyReason::Cached)
        );
        assert_eq!(cache.stats().hashes, hashes);
        // Past their lifetimes, hashed again.
        let later = t0 + AuthCacheConfig::DEFAULT.deny_ttl_ns;
        assert_eq!(
            c.verify(Some(&header("alice", b"Secret")), &mut cache, later),
            AuthOutcome::Denied(DenyReason::WrongPassword)
        );
        assert_eq!(c.verify(Some(&header("alice", b"secret")), &mut cache, later), AuthOutcome::Allowed);
        assert_eq!(cache.stats().hashes, hashes + 1);
        let much_later = t0 + AuthCacheConfig::DEFAULT.allow_ttl_ns;
        assert_eq!(c.verify(Some(&header("alice", b"secret")), &mut cache, much_later), AuthOutcome::Allowed);
        assert_eq!(cache.stats().hashes, hashes + 2);
    }

    #[test]
    fn a_changed_secret_is_a_new_identity() {
        let c = check();
        let mut cache = AuthCache::new(AuthCacheConfig::DEFAULT, &SipKey::new([7; 16]));
        let alice = header("alice", b"secret");
        assert_eq!(c.verify(Some(&alice), &mut cache, 1), AuthOutcome::Allowed);
        // alice's password changed: the cached verdict of the old one does not apply.
        let users =
            vec![("alice".to_string(), PasswordHash::parse("{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=").unwrap())];
        let changed = BasicAuthCheck::new(&BasicAuth { realm: "Staff only".into(), users });
        assert_eq!(
            changed.verify(Some(&alice), &mut cache, 2),
            AuthOutcome::Denied(DenyReason::WrongPassword)
        );
        assert_eq!(changed.verify(Some(&header("alice", b"pw")), &mut cache, 3), AuthOutcome::Allowed);
        // A user added: alice's verdict stays cached.
        let users = vec![
            ("alice".to_string(), PasswordHash::parse("{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=").unwrap()),
            ("zed".to_string(), PasswordHash::parse("$1$abc$jWy0FsfCoVBK.I85XpXf30").unwrap()),
        ];
        let grown = BasicAuthCheck::new(&BasicAuth { realm: "Other realm".into(), users });
        let hashes = cache.stats().hashes;
        assert_eq!(grown.verify(Some(&header("alice", b"pw")), &mut cache, 4), AuthOutcome::Allowed);
        assert_eq!(cache.stats().hashes, hashes);
    }

    #[test]
    fn guessing_spends_the_budget_but_not_the_cached_users() {
        let c = check();
        let config = AuthCacheConfig { work_per_s: 32, work_burst: 64, ..AuthCacheConfig::DEFAULT };
        let mut cache = AuthCache::new(config, &SipKey::new([1; 16]));
        let t0 = 5_000_000_000;
        // bob is bcrypt cost 5: 32 units. Logged in first.
        let bob = header("bob", b"correct horse battery staple");
        assert_eq!(c.verify(Some(&bob), &mut cache, t0), AuthOutcome::Allowed);
        // 32 units left: one guess, a second into debt is allowed (not in debt yet), then busy.
        let guess = |i: u32| header("bob", format!("guess{i}").as_bytes());
        assert_eq!(c.verify(Some(&guess(0)), &mut cache, t0), AuthOutcome::Denied(DenyReason::WrongPassword));
        assert_eq!(c.verify(Some(&guess(1)), &mut cache, t0), AuthOutcome::Denied(DenyReason::WrongPassword));
        for i in 2..50 {
            assert_eq!(c.verify(Some(&guess(i)), &mut cache, t0), AuthOutcome::Busy, "guess {i}");
        }
        // bob, cached, still gets in; SHA-1 users are not budgeted.
        assert_eq!(c.verify(Some(&bob), &mut cache, t0), AuthOutcome::Allowed);
        assert_eq!(c.verify(Some(&header("carol", b"pw")), &mut cache, t0), AuthOutcome::Allowed);
        // Out of debt after a second (32 units back): slow hashes again.
        assert_eq!(c.verify(Some(&guess(60)), &mut cache, t0 + 999_000_000), AuthOutcome::Busy);
        assert_eq!(
            c.verify(Some(&guess(61)), &mut cache, t0 + 1_000_000_000),
            AuthOutcome::Denied(DenyReason::WrongPassword)
        );
        assert_eq!(cache.stats().busy, 49);
    }

    #[test]
    fn a_hash_dearer_than_the_burst_is_never_computed() {
        let tail = "$bEEIVhKD7z2XMK0S0Lp1rOo8tCmXWl/BcqwWR1S2fJnfq3Kc2cgPy";
        let bcrypt = |cost: &str| PasswordHash::parse(&format!("$2y${cost}{tail}")).unwrap();
        // A burst of 64 units: cost 7 (128) is never computed, however long one waits; cost 6
        // (64, the burst exactly) is.
        let small = AuthCacheConfig { work_per_s: 64, work_burst: 64, ..AuthCacheConfig::DEFAULT };
        let users = vec![("seven".to_string(), bcrypt("07")), ("six".to_string(), bcrypt("06"))];
        let c = BasicAuthCheck::new(&BasicAuth { realm: "r".into(), users });
        let mut cache = AuthCache::new(small, &SipKey::new([3; 16]));
        for (i, now_ns) in [0, 60_000_000_000].into_iter().enumerate() {
            let guess = header("seven", format!("guess{i}").as_bytes());
            assert_eq!(c.verify(Some(&guess), &mut cache, now_ns), AuthOutcome::Busy, "at {now_ns}");
        }
        assert_eq!(cache.stats().hashes, 0);
        let guess = header("six", b"nope");
        assert_eq!(
            c.verify(Some(&guess), &mut cache, 120_000_000_000),
            AuthOutcome::Denied(DenyReason::WrongPassword)
        );
        assert_eq!(cache.stats().hashes, 1);
        // The defaults (a burst of 2^14): bcrypt of cost 20 (about a minute of a core) or 31
        // (days) — Busy at first, after a minute, after a day; no hash computed.
        let users = vec![("slow".to_string(), bcrypt("20")), ("max".to_string(), bcrypt("31"))];
        let c = BasicAuthCheck::new(&BasicAuth { realm: "r".into(), users });
        let mut cache = AuthCache::new(AuthCacheConfig::DEFAULT, &SipKey::new([2; 16]));
        for (i, now_ns) in [0, 60_000_000_000, 86_400_000_000_000].into_iter().enumerate() {
            for user in ["slow", "max"] {
                let value = header(user, format!("guess{i}").as_bytes());
                assert_eq!(
                    c.verify(Some(&value), &mut cache, now_ns),
                    AuthOutcome::Busy,
                    "{user} at {now_ns}"
                );
            }
        }
        assert_eq!(cache.stats().hashes, 0);
    }

    #[test]
    fn denied_verdicts_never_evict_live_allowed_ones() {
        let c = check();
        // One bucket of four.
        let config = AuthCacheConfig { entries: 4, ..AuthCacheConfig::DEFAULT };
        let mut cache = AuthCache::new(config, &SipKey::new([2; 16]));
        let logins = [header("carol", b"pw"), header("eve", b"")];
        let _ = c.verify(Some(&logins[0]), &mut cache, 10);
        let _ = c.verify(Some(&logins[1]), &mut cache, 10);
        // Late in the allowed verdicts' life, so they end before any denied one made now: the
        // nearest end alone would pick them.
        let late = 10 + config.allow_ttl_ns - config.deny_ttl_ns / 2;
        for i in 0..100 {
            let _ = c.verify(Some(&header("carol", format!("x{i}").as_bytes())), &mut cache, late);
        }
        let hashes = cache.stats().hashes;
        assert_eq!(c.verify(Some(&logins[0]), &mut cache, late + 1), AuthOutcome::Allowed);
        assert_eq!(c.verify(Some(&logins[1]), &mut cache, late + 1), AuthOutcome::Allowed);
        assert_eq!(cache.stats().hashes, hashes, "both came from the cache");
    }

    #[test]
    fn challenges() {
        let mut buf = [0u8; 64];
        let n = write_challenge("Staff only", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"WWW-Authenticate: Basic realm=\"Staff only\"\r\n");
        let n = write_challenge("a\"b\\c\r\nX: y", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"WWW-Authenticate: Basic realm=\"a\\\"b\\\\cX: y\"\r\n");
        let n = write_challenge("", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"WWW-Authenticate: Basic realm=\"\"\r\n");
        assert_eq!(write_challenge("Staff only", &mut [0u8; 40]), Err(TooSmall));
    }

    #[test]
    fn debug_shows_no_hash() {
        let shown = format!("{:?}", check());
        assert!(!shown.contains("$2y$") && !shown.contains("apr1"), "{shown}");
    }
}
