//! htpasswd files and Basic credentials: `sluice_model::policy::parse_htpasswd` (what control
//! reads from an `auth-secret`) on the input's text up to its first NUL, then
//! `sluice_l7::policy::auth` — the `Authorization` value after the NUL checked against the
//! users, through the worker's verdict cache.
//!
//! What must hold: no panic; the users are valid Basic user names, sorted, each once; a hash's
//! `Debug` shows its kind only (never the hash); the cached path answers as the direct check
//! does (`verify` allows exactly when `check_password` accepts), and asked twice gives the same
//! answer (the second from the cache). The budget of slow hashes is small here, so that bcrypt
//! costs over 6 are answered Busy instead of stalling the fuzzer (the gateway's budget is what
//! keeps them from stalling a worker).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_l7::policy::SipKey;
use sluice_l7::policy::auth::{
    AuthCache, AuthCacheConfig, AuthOutcome, BasicAuthCheck, DenyReason, MAX_CREDENTIALS_BYTES, parse_basic,
};
use sluice_model::policy::{self, BasicAuth};

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("htpasswd"), |data: &[u8]| {
    let (file, header) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(file);
    let (users, bad) = policy::parse_htpasswd(&text);
    assert!(users.len() + bad.len() <= text.lines().count());
    for w in users.windows(2) {
        assert!(w[0].0 < w[1].0, "users sorted, each once");
    }
    for (user, hash) in &users {
        assert!(policy::is_user(user), "{user:?}");
        let shown = format!("{hash:?}");
        assert!(["bcrypt", "md5-crypt", "sha1"].contains(&shown.as_str()), "{shown}");
    }

    let check = BasicAuthCheck::new(&BasicAuth { realm: "fuzz".into(), users });
    let config = AuthCacheConfig { work_per_s: 64, work_burst: 64, ..AuthCacheConfig::DEFAULT };
    let mut cache = AuthCache::new(config, &SipKey::new(*b"sluice fuzz key!"));
    let mut buf = [0u8; MAX_CREDENTIALS_BYTES];
    let first = check.verify(Some(header), &mut cache, 0);
    let second = check.verify(Some(header), &mut cache, 1);
    // The direct check hashes without a budget: only where `verify` hashed (within it).
    let hashed = matches!(first, AuthOutcome::Allowed | AuthOutcome::Denied(DenyReason::WrongPassword));
    let parsed = parse_basic(header, &mut buf);
    let direct = parsed.map(|(u, p)| hashed && check.check_password(u, p));
    match first {
        AuthOutcome::Allowed => {
            assert_eq!(direct, Some(true));
            assert_eq!(second, AuthOutcome::Allowed);
        }
        AuthOutcome::Denied(DenyReason::WrongPassword) => {
            assert_eq!(direct, Some(false));
            assert_eq!(second, AuthOutcome::Denied(DenyReason::Cached));
        }
        AuthOutcome::Denied(DenyReason::Malformed) => assert_eq!(direct, None),
        AuthOutcome::Denied(_) | AuthOutcome::Busy => assert_eq!(second, first),
    }
    let mut out = [0u8; 512];
    let n = check.write_challenge(&mut out).unwrap();
    assert!(out[..n].starts_with(b"WWW-Authenticate: Basic realm=\"fuzz\""));
});
