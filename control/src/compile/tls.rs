//! A `kubernetes.io/tls` Secret → the certificate material the L7 stage serves: `tls.crt`
//! (PEM, the chain leaf first) and `tls.key` (PEM: PKCS#1 `RSA PRIVATE KEY`, PKCS#8
//! `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`), checked as a TLS server needs them:
//!
//! - `tls.crt` is PEM and holds at least one `CERTIFICATE`, each an X.509 certificate;
//! - `tls.key` holds a private key of a kind rustls signs with (RSA, ECDSA P-256/P-384/P-521,
//!   Ed25519: `rustls::crypto::aws_lc_rs::sign::any_supported_type`);
//! - the key is the leaf's (`CertifiedKey::keys_match`: the public keys' SubjectPublicKeyInfo
//!   compared);
//! - the leaf has not expired (its `notAfter` is checked against the time given).
//!
//! Errors say which of these failed and never hold key bytes. Not hot path. No `unsafe`.

use std::fmt;

use rustls::crypto::aws_lc_rs::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sluice_model::l7::KeyFormat;

/// A Secret's certificate material, checked.
pub(super) struct Material {
    /// The chain, leaf first, DER.
    pub(super) chain_der: Vec<Vec<u8>>,
    /// The key's encoding.
    pub(super) key_format: KeyFormat,
    /// The key, DER.
    pub(super) key_der: Vec<u8>,
    /// The leaf's `notAfter`, Unix seconds.
    pub(super) not_after_unix_s: i64,
}

/// Why a TLS Secret cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TlsError {
    /// `tls.crt` has no PEM block at all.
    CertNotPem,
    /// `tls.crt` is PEM, but a block is damaged.
    CertPem(String),
    /// `tls.crt` holds no `CERTIFICATE` block.
    NoCertificate,
    /// A certificate of the chain (index, 0 = leaf) is not X.509.
    NotX509(usize),
    /// `tls.key` holds no private key block.
    NoKey,
    /// `tls.key` is not a key rustls can sign with.
    UnsupportedKey,
    /// The key is not the leaf's.
    KeyMismatch,
    /// The leaf expired at this time (Unix seconds; RFC 3339 for a person).
    Expired(i64, String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::CertNotPem => f.write_str("tls.crt is not PEM (no -----BEGIN CERTIFICATE----- block)"),
            TlsError::CertPem(e) => write!(f, "tls.crt: a PEM block is damaged ({e})"),
            TlsError::NoCertificate => f.write_str("tls.crt holds no CERTIFICATE block"),
            TlsError::NotX509(0) => f.write_str("tls.crt: the first certificate (the leaf) is not X.509"),
            TlsError::NotX509(i) => write!(f, "tls.crt: certificate {} of the chain is not X.509", i + 1),
            TlsError::NoKey => f.write_str(
                "tls.key holds no private key (PEM: PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            ),
            TlsError::UnsupportedKey => f.write_str(
                "tls.key is not a key Sluice can sign with (RSA, ECDSA P-256/P-384/P-521 or Ed25519)",
            ),
            TlsError::KeyMismatch => {
                f.write_str("tls.key does not match the certificate in tls.crt (its first, the leaf)")
            }
            TlsError::Expired(_, at) => write!(f, "the certificate in tls.crt expired at {at}"),
        }
    }
}

/// Checks `tls.crt` and `tls.key` (see the module documentation) at time `now_unix_s`.
pub(super) fn material(crt: &[u8], key: &[u8], now_unix_s: i64) -> Result<Material, TlsError> {
    let mut chain = Vec::new();
    for c in CertificateDer::pem_slice_iter(crt) {
        chain.push(c.map_err(|e| TlsError::CertPem(pem_error(&e)))?);
    }
    if chain.is_empty() {
        // Some PEM, but no certificate in it (a key pasted in the wrong field, say).
        let pem = crt.windows(11).any(|w| w == b"-----BEGIN ");
        return Err(if pem { TlsError::NoCertificate } else { TlsError::CertNotPem });
    }
    let mut not_after_unix_s = 0;
    for (i, c) in chain.iter().enumerate() {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(c.as_ref()).map_err(|_| TlsError::NotX509(i))?;
        if i == 0 {
            not_after_unix_s = parsed.validity().not_after.timestamp();
        }
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::NoKey)?;
    let key_format = match &key {
        PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
        PrivateKeyDer::Pkcs8(_) => KeyFormat::Pkcs8,
        PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
        _ => return Err(TlsError::UnsupportedKey),
    };
    let signing = any_supported_type(&key).map_err(|_| TlsError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, signing);
    // Unknown (a key that cannot give its public key) is a mismatch here: every key
    // `any_supported_type` makes can, so it would mean a key we cannot vouch for.
    certified.keys_match().map_err(|_| TlsError::KeyMismatch)?;
    if not_after_unix_s < now_unix_s {
        return Err(TlsError::Expired(not_after_unix_s, rfc3339(not_after_unix_s)));
    }
    Ok(Material {
        chain_der: certified.cert.iter().map(|c| c.as_ref().to_vec()).collect(),
        key_format,
        key_der: key.secret_der().to_vec(),
        not_after_unix_s,
    })
}

/// A PEM error, said without the bytes.
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no -----END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a block is not base64".into(),
        _ => "unreadable".into(),
    }
}

/// Unix seconds as `2025-01-01T00:00:00Z` (H. Hinnant's civil_from_days).
pub fn rfc3339(unix_s: i64) -> String {
    let (days, secs) = (unix_s.div_euclid(86_400), unix_s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
        PKCS_RSA_SHA256, SignatureAlgorithm,
    };

    /// A self-signed certificate for `hosts` made with `key`, valid until `not_after` (y, m, d).
    pub(crate) fn cert(key: &KeyPair, hosts: &[&str], not_after: (i32, u8, u8)) -> String {
        let mut p = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        p.self_signed(key).unwrap().pem()
    }

    /// A fresh key of `alg` (PKCS#8, as rcgen makes them).
    pub(crate) fn key(alg: &'static SignatureAlgorithm) -> KeyPair {
        KeyPair::generate_for(alg).unwrap()
    }

    /// The private key inside a PKCS#8 `PrivateKeyInfo` (the PKCS#1 or SEC1 key it wraps):
    /// the content of its third element, an OCTET STRING.
    pub(crate) fn unwrap_pkcs8(der: &[u8]) -> Vec<u8> {
        // A DER TLV at `at`: (content start, content end).
        fn tlv(der: &[u8], at: usize) -> (usize, usize) {
            let (len, start) = match der[at + 1] {
                n if n < 0x80 => (n as usize, at + 2),
                n => {
                    let k = (n & 0x7f) as usize;
                    (der[at + 2..at + 2 + k].iter().fold(0usize, |a, &b| a << 8 | b as usize), at + 2 + k)
                }
            };
            (start, start + len)
        }
        let (mut at, _) = tlv(der, 0);
        for _ in 0..2 {
            at = tlv(der, at).1;
        }
        assert_eq!(der[at], 0x04, "an OCTET STRING");
        let (s, e) = tlv(der, at);
        der[s..e].to_vec()
    }

    const NOW: i64 = 1_767_225_600; // 2026-01-01

    #[test]
    fn rsa_ecdsa_and_ed25519_keys_are_accepted_in_each_encoding() {
        for (alg, format) in [
            (&PKCS_RSA_SHA256, KeyFormat::Pkcs8),
            (&PKCS_ECDSA_P256_SHA256, KeyFormat::Pkcs8),
            (&PKCS_ECDSA_P384_SHA384, KeyFormat::Pkcs8),
            (&PKCS_ED25519, KeyFormat::Pkcs8),
        ] {
            let k = key(alg);
            let crt = cert(&k, &["shop.example.com"], (2100, 1, 1));
            let m = material(crt.as_bytes(), k.serialize_pem().as_bytes(), NOW)
                .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(m.key_format, format);
            assert_eq!(m.chain_der.len(), 1);
            assert_eq!(m.not_after_unix_s, 4_102_444_800);
        }
        // The same keys as PKCS#1 (RSA) and SEC1 (ECDSA).
        for (alg, label, format) in [
            (&PKCS_RSA_SHA256, "RSA PRIVATE KEY", KeyFormat::Pkcs1),
            (&PKCS_ECDSA_P256_SHA256, "EC PRIVATE KEY", KeyFormat::Sec1),
            (&PKCS_ECDSA_P384_SHA384, "EC PRIVATE KEY", KeyFormat::Sec1),
        ] {
            let k = key(alg);
            let crt = cert(&k, &["shop.example.com"], (2100, 1, 1));
            let inner = pem_text(label, &unwrap_pkcs8(&k.serialize_der()));
            let m =
                material(crt.as_bytes(), inner.as_bytes(), NOW).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(m.key_format, format, "{label}");
        }
    }

    /// `der` as a PEM block labelled `label`.
    pub(crate) fn pem_text(label: &str, der: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for c in der.chunks(3) {
            let n = c.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                b64.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
            }
        }
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    #[test]
    fn each_bad_secret_says_what_is_wrong() {
        let k = key(&PKCS_ECDSA_P256_SHA256);
        let other = key(&PKCS_ECDSA_P256_SHA256);
        let good = cert(&k, &["a.example.com"], (2100, 1, 1));
        let key_pem = k.serialize_pem();
        let check = |crt: &str, key: &str| material(crt.as_bytes(), key.as_bytes(), NOW).err();
        assert_eq!(check("hello", &key_pem), Some(TlsError::CertNotPem));
        assert_eq!(check(&key_pem, &key_pem), Some(TlsError::NoCertificate));
        assert_eq!(check(&good, "hello"), Some(TlsError::NoKey));
        assert_eq!(check(&good, &other.serialize_pem()), Some(TlsError::KeyMismatch));
        let expired = cert(&k, &["a.example.com"], (2020, 1, 1));
        let e = check(&expired, &key_pem).unwrap();
        assert_eq!(e.to_string(), "the certificate in tls.crt expired at 2020-01-01T00:00:00Z");
        // An X25519 key (a key-agreement key, not a signing one): the Ed25519 PKCS#8 with the
        // algorithm OID 1.3.101.112 changed to 1.3.101.110.
        let mut x25519 = key(&PKCS_ED25519).serialize_der();
        let oid = x25519.windows(5).position(|w| w == [0x06, 0x03, 0x2b, 0x65, 0x70]).unwrap();
        x25519[oid + 4] = 0x6e;
        assert_eq!(check(&good, &pem_text("PRIVATE KEY", &x25519)), Some(TlsError::UnsupportedKey));
        // A CERTIFICATE block that is not X.509.
        assert_eq!(check(&pem_text("CERTIFICATE", b"\x30\x00"), &key_pem), Some(TlsError::NotX509(0)));
        // No error holds key material.
        for e in [TlsError::NoKey, TlsError::UnsupportedKey, TlsError::KeyMismatch] {
            assert!(!e.to_string().contains("MII"), "{e}");
        }
    }

    #[test]
    fn dates_print_as_the_api_server_writes_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_868_801), "2000-03-01T00:00:01Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
    }
}
