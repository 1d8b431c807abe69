//! The TLS server path up to the certificate resolver and past it: a `rustls::ServerConnection`
//! made from the configuration the gateway builds (`sluice_l7::tls::build`: its suites, ALPN,
//! tickets, and Sluice's SNI resolver `CertStore` over a precise, a wildcard and the default
//! certificate) fed the input as the records a client sends, in reads whose size the first byte
//! sets; what the server writes is taken as it comes.
//!
//! What must hold: no panic; once rustls reports an error the connection is not fed again (the
//! driver closes it after writing the alert); the resolver's choice for a name
//! (`CertStore::pick`, which rustls calls with the ClientHello's SNI) is the precise
//! certificate, the wildcard's, or the default — the same for every spelling of one name.
#![no_main]

use std::io::Read as _;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::ServerConnection;
use sluice_l7::tls::{self, DefaultCert, TlsGeneration};
use sluice_model::l7::{Certificate, KeyFormat, SecretRef};
use sluice_model::route::{HostRule, IngressRef};

fn certificate(name: &str, host: &str) -> Certificate {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap().self_signed(&key).unwrap();
    Certificate {
        secret: SecretRef { namespace: "shop".into(), name: name.into() },
        ingresses: vec![IngressRef::new("shop", name)],
        hosts: vec![HostRule::new(Some(host)).unwrap()],
        chain_der: vec![cert.der().to_vec()],
        key_format: KeyFormat::Pkcs8,
        key_der: key.serialize_der(),
        not_after_unix_s: 4_000_000_000,
    }
}

/// The configuration, built once (certificates are made at start: no key is committed).
fn generation() -> &'static TlsGeneration {
    static G: OnceLock<TlsGeneration> = OnceLock::new();
    G.get_or_init(|| {
        let certs =
            vec![certificate("shop-tls", "shop.example.com"), certificate("wild-tls", "*.example.com")];
        let default = DefaultCert::generate(1_790_000_000).unwrap();
        let (g, problems) = tls::build(&certs, &default, &tls::new_ticketer().unwrap());
        assert!(problems.is_empty(), "{problems:?}");
        g
    })
}

fuzz_target!(init: sluice_fuzz::seeds::write_if_asked("tls_hello"), |data: &[u8]| {
    let g = generation();
    let Some((&first, bytes)) = data.split_first() else { return };
    let step = usize::from(first % 64) * 8 + 1;
    let mut conn = ServerConnection::new(Arc::clone(&g.config)).unwrap();
    let mut out = Vec::new();
    let mut plain = [0u8; 4096];
    for piece in bytes.chunks(step) {
        let mut rest = piece;
        let mut failed = false;
        while !rest.is_empty() {
            match conn.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                // Its buffer is full: the driver stops reading (backpressure).
                Err(_) => break,
            }
            if conn.process_new_packets().is_err() {
                failed = true;
                break;
            }
        }
        while conn.wants_write() {
            out.clear();
            conn.write_tls(&mut out).unwrap();
        }
        if failed {
            // The alert went out above; the driver closes the connection.
            return;
        }
        // Plaintext (a client that got this far completed a handshake: not with random bytes,
        // but with the seeds' replayed ones it can be reached) is read and dropped.
        while let Ok(n) = conn.reader().read(&mut plain) {
            if n == 0 {
                break;
            }
        }
    }
    // The SNI the client sent (if rustls got that far) picks what the resolver picks for it.
    if let Some(name) = conn.server_name() {
        let chosen = g.store.pick(Some(name));
        let upper = name.to_ascii_uppercase();
        assert!(Arc::ptr_eq(chosen, g.store.pick(Some(&upper))), "{name}");
    }
});
