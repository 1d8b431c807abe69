//! TLS to upstreams (`backend-protocol: HTTPS` and `GRPCS`), its configuration half: the rustls
//! [`ClientConfig`]s a worker opens TLS upstream connections with. The connections themselves
//! (`rustls::ClientConnection`, bytes in, bytes out) belong to the driver (`sluice-proxy`);
//! nothing here opens a socket.
//!
//! # Policy: ingress-nginx's defaults
//! ingress-nginx proxies these protocols with `proxy_pass https://` and `grpc_pass grpcs://`
//! and, unless an Ingress asks otherwise with its `proxy-ssl-*` annotations, nginx's defaults:
//! - `proxy_ssl_verify off`: the upstream's certificate is **not** checked against a CA, nor
//!   its name. An endpoint is a Pod address the cluster gave; its certificate is usually
//!   self-signed or issued for a Service name, and Ingresses written for ingress-nginx count on
//!   it being taken. So [`AnyServerCertificate`] takes any end-entity certificate — but the
//!   handshake itself stays sound: the server must prove it holds the key of the certificate
//!   it sent (its handshake signature is verified with the crypto provider's algorithms), and
//!   the key exchange, transcript and record protection are rustls' own. What this does not
//!   give is authentication of *who* the upstream is: anyone who can answer on the endpoint's
//!   address is believed, as with ingress-nginx by default. `proxy-ssl-verify: "on"` is not
//!   implemented; control denies an Ingress that asks for it (503) rather than serve it
//!   without the check.
//! - `proxy_ssl_server_name off`: no SNI. The server name of a connection is the endpoint's IP
//!   address, for which rustls sends none (RFC 6066 §3: literal addresses are not permitted in
//!   `server_name`); it also keys the session cache, per endpoint.
//! - ALPN ([`ALPN_HTTPS`], [`ALPN_GRPCS`]): `http/1.1` for HTTPS, `h2` for GRPCS (the upstream
//!   then speaks HTTP/2 through [`crate::proxy::H2Upstream`]). nginx offers these too.
//! - Versions and suites: the same as the listeners' ([`crate::tls::VERSIONS`], TLS 1.3 and
//!   1.2; [`crate::tls::CIPHER_SUITES`], AEAD and ECDHE only). An upstream that speaks only
//!   TLS 1.1 or older, or only CBC suites, fails the handshake (502).
//! - Resumption: rustls' default in-memory client session cache (TLS 1.3 tickets, TLS 1.2
//!   tickets and session ids), per configuration: a worker's next connection to the same
//!   endpoint resumes. It is touched once per handshake (and per ticket received), behind a
//!   mutex nobody else takes: one [`UpstreamTls`] per worker. No 0-RTT (replayable).
//!
//! # Known limits
//! - No certificate verification (`proxy-ssl-verify`, `proxy-ssl-secret`), no client
//!   certificate toward the upstream, no SNI (`proxy-ssl-server-name`, `proxy-ssl-name`), no
//!   choice of versions or suites per Ingress (`proxy-ssl-protocols`, `proxy-ssl-ciphers`).
//!
//! Not hot path: the configurations are built once per worker; [`AnyServerCertificate`]'s
//! methods run once per full handshake. No `unsafe`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sluice_model::policy::BackendProtocol;

use crate::tls;

/// The ALPN protocol offered to `backend-protocol: HTTPS` upstreams.
pub const ALPN_HTTPS: &[u8] = b"http/1.1";

/// The ALPN protocol offered to `backend-protocol: GRPCS` upstreams.
pub const ALPN_GRPCS: &[u8] = b"h2";

/// A worker's TLS client configurations: one per TLS backend protocol, each with its session
/// cache. Make one per worker (or share one `Arc` of each); never one per connection, which
/// would lose resumption and cost a configuration per handshake.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    https: Arc<ClientConfig>,
    grpcs: Arc<ClientConfig>,
}

impl Default for UpstreamTls {
    fn default() -> UpstreamTls {
        UpstreamTls::new()
    }
}

impl UpstreamTls {
    /// The configurations for HTTPS and GRPCS upstreams (see the module documentation).
    pub fn new() -> UpstreamTls {
        UpstreamTls { https: Arc::new(client_config(ALPN_HTTPS)), grpcs: Arc::new(client_config(ALPN_GRPCS)) }
    }

    /// The configuration to reach an upstream of `protocol` with; `None` when it is not TLS.
    pub fn config(&self, protocol: BackendProtocol) -> Option<&Arc<ClientConfig>> {
        match protocol {
            BackendProtocol::Https => Some(&self.https),
            BackendProtocol::Grpcs => Some(&self.grpcs),
            BackendProtocol::Http | BackendProtocol::Grpc | BackendProtocol::H2c => None,
        }
    }
}

/// A TLS client configuration for upstreams that offers `alpn`: [`tls::provider`], TLS 1.3 and
/// 1.2, [`AnyServerCertificate`], no SNI, the default session cache.
pub fn client_config(alpn: &[u8]) -> ClientConfig {
    let provider = Arc::new(tls::provider());
    let verifier = Arc::new(AnyServerCertificate::new(provider.signature_verification_algorithms));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(tls::VERSIONS)
        .expect("CIPHER_SUITES has suites for both VERSIONS (tested in tls)")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    // proxy_ssl_server_name off. An IP address server name sends none anyway; this says so.
    config.enable_sni = false;
    config.enable_early_data = false;
    config
}

/// The certificate verifier of `proxy_ssl_verify off` (ingress-nginx's default, see the module
/// documentation): any end-entity certificate is taken, whatever its issuer, name or dates;
/// the handshake's signature must still be valid for the certificate's key, checked with the
/// crypto provider's algorithms. So the connection is encrypted and bound to whoever holds
/// that key, though nothing says who that is.
#[derive(Debug)]
pub struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyServerCertificate {
    /// A verifier that checks handshake signatures with `algorithms` (the crypto provider's
    /// `signature_verification_algorithms`).
    pub fn new(algorithms: WebPkiSupportedAlgorithms) -> AnyServerCertificate {
        AnyServerCertificate { algorithms }
    }
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // proxy_ssl_verify off: no chain, name or date check. A certificate that does not even
        // parse fails below, where its key is needed for the handshake signature.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::{CertifiedKey, SingleCertAndKey};
    use rustls::{ClientConnection, ServerConfig, ServerConnection};

    /// A server configuration with a self-signed certificate for another name than any the
    /// client could ask for, offering `alpn`; `forged`: it signs its handshakes with another
    /// key than its certificate's.
    fn server(alpn: &[&[u8]], forged: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(tls::provider());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["backend.invalid".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let signer = if forged { rcgen::KeyPair::generate().unwrap() } else { key };
        let der = rustls::pki_types::PrivateKeyDer::try_from(signer.serialize_der()).unwrap();
        let signing = provider.key_provider.load_private_key(der).unwrap();
        // CertifiedKey::new does not check that the key is the certificate's (from_der would).
        let certified = CertifiedKey::new(vec![cert.der().clone()], signing);
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(tls::VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Runs a handshake in memory (client `version`): the client's error, or the ALPN protocol
    /// agreed and the SNI the server saw.
    fn handshake(
        client: &Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> Result<(Option<Vec<u8>>, Option<String>), rustls::Error> {
        let name = ServerName::IpAddress(std::net::IpAddr::from([198, 18, 1, 10]).into());
        let mut c = ClientConnection::new(Arc::clone(client), name).unwrap();
        let mut s = ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            s.read_tls(&mut &wire[..]).unwrap();
            // A server error (an alert) reaches the client, which reports it below.
            let _ = s.process_new_packets();
            let mut back = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut back).unwrap();
            }
            if !back.is_empty() {
                c.read_tls(&mut &back[..]).unwrap();
            }
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok((c.alpn_protocol().map(<[u8]>::to_vec), s.server_name().map(str::to_owned)));
            }
        }
        panic!("the handshake did not end");
    }

    /// The client configuration of `protocol`, limited to one TLS version.
    fn only(
        protocol: BackendProtocol,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<ClientConfig> {
        let base = UpstreamTls::new().config(protocol).unwrap().as_ref().clone();
        let provider = Arc::new(tls::provider());
        let verifier = Arc::new(AnyServerCertificate::new(provider.signature_verification_algorithms));
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = base.alpn_protocols;
        config.enable_sni = base.enable_sni;
        Arc::new(config)
    }

    #[test]
    fn any_certificate_is_taken_without_sni_and_alpn_is_the_protocols() {
        let tls = UpstreamTls::new();
        assert!(tls.config(BackendProtocol::Http).is_none());
        assert!(tls.config(BackendProtocol::Grpc).is_none() && tls.config(BackendProtocol::H2c).is_none());
        let both: &[&[u8]] = &[b"h2", b"http/1.1"];
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // A self-signed certificate for another name: taken (proxy_ssl_verify off).
            let (alpn, sni) = handshake(&only(BackendProtocol::Https, version), server(both, false)).unwrap();
            assert_eq!((alpn.as_deref(), sni), (Some(&b"http/1.1"[..]), None), "{version:?}");
            let (alpn, sni) = handshake(&only(BackendProtocol::Grpcs, version), server(both, false)).unwrap();
            assert_eq!((alpn.as_deref(), sni), (Some(&b"h2"[..]), None), "{version:?}");
        }
        // And the configurations themselves, both versions offered.
        let (alpn, _) = handshake(tls.config(BackendProtocol::Grpcs).unwrap(), server(both, false)).unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    }

    #[test]
    fn a_handshake_signed_with_another_key_than_the_certificates_is_refused() {
        // What keeps an unverified certificate from being a free pass: the server must hold
        // the key of the certificate it shows (TLS 1.3 CertificateVerify, TLS 1.2
        // ServerKeyExchange signature).
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let e = handshake(&only(BackendProtocol::Https, version), server(&[], true)).unwrap_err();
            assert!(
                matches!(e, rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)),
                "{version:?}: {e:?}"
            );
        }
    }
}
