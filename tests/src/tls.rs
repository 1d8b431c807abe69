//! Certificates and TLS Secrets made at run time, as an operator makes them (`openssl req`,
//! `kubectl create secret tls`): no key is ever committed. For the namespace tests, the demo and
//! the L7 benchmark.

use std::io::{self, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

/// A self-signed ECDSA P-256 certificate for `host` and `*.host`, subject `CN=host, O=tag`,
/// written to `dir/tag.crt` and `dir/tag.key`: (certificate PEM, key PEM). Not a CA, unlike
/// what `openssl req -x509` makes by default: rustls refuses a CA certificate as a server's
/// (`CaUsedAsEndEntity`), and curl and OpenSSL take it as a trust anchor all the same.
pub fn certificate(dir: &Path, host: &str, tag: &str) -> io::Result<(String, String)> {
    certificate_with(dir, host, tag, 30, &[])
}

/// [`certificate`] valid for `days`, with more X.509v3 extensions (`openssl req -addext`
/// syntax, e.g. `authorityInfoAccess=OCSP;URI:http://ocsp.example/`): a certificate as an
/// operator's CA would issue it, for scanners that rate the certificate too.
pub fn certificate_with(
    dir: &Path,
    host: &str,
    tag: &str,
    days: u32,
    extensions: &[&str],
) -> io::Result<(String, String)> {
    let (cert, key) = (dir.join(format!("{tag}.crt")), dir.join(format!("{tag}.key")));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            &days.to_string(),
        ])
        .args(["-subj", &format!("/CN={host}/O={tag}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host},DNS:*.{host}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(extensions.iter().flat_map(|e| ["-addext", e]))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((std::fs::read_to_string(&cert)?, std::fs::read_to_string(&key)?))
}

/// A `kubernetes.io/tls` Secret `name` holding `cert` and `key` (PEM), as `kubectl create
/// secret tls NAME --cert --key` writes it (base64 under `data`).
pub fn tls_secret(name: &str, cert: &str, key: &str) -> io::Result<String> {
    Ok(format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        base64(cert.as_bytes())?,
        base64(key.as_bytes())?
    ))
}

/// `bytes` in base64 on one line (coreutils' `base64 -w0`).
fn base64(bytes: &[u8]) -> io::Result<String> {
    let mut child = Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    child.stdin.take().ok_or_else(|| io::Error::other("base64: no stdin"))?.write_all(bytes)?;
    let out = child.wait_with_output()?;
    String::from_utf8(out.stdout).map_err(io::Error::other)
}

/// An htpasswd Secret for ingress-nginx's basic auth (`auth-type: basic`): key `auth` holding
/// `user:` and an Apache MD5 hash of `password`, made at run time with `openssl passwd -apr1`
/// (no hash is committed).
pub fn basic_auth_secret(name: &str, user: &str, password: &str) -> io::Result<String> {
    let out = Command::new("openssl").args(["passwd", "-apr1", password]).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("openssl passwd: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\nstringData:\n  auth: '{user}:{hash}'\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_holds_the_pem_as_kubectl_writes_it() {
        let s = tls_secret("tls", "CERT", "KEY").unwrap();
        assert!(s.contains("type: kubernetes.io/tls\n"), "{s}");
        // base64("CERT") and base64("KEY").
        assert!(s.contains("  tls.crt: Q0VSVA==\n  tls.key: S0VZ\n"), "{s}");
    }
}
