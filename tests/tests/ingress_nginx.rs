//! Namespace tests of scenario 12: Ingresses written for ingress-nginx, served as they are by
//! control with `--ingress-nginx-class` — `deploy/examples/ingress-nginx/` over the petclinic
//! backends, real curl clients, real nginx backends: rewrite-target with capture groups,
//! ssl-redirect (with HSTS) and force-ssl-redirect, app-root, basic auth from an htpasswd
//! Secret, limit-rps and limit-connections, a canary by weight and by header, custom-headers and
//! proxy-set-headers from ConfigMaps (gone with their ConfigMap, back when it is). Needs root;
//! see the crate docs.

use std::time::{Duration, Instant};

use sluice_sandbox::tls::{basic_auth_secret, certificate, tls_secret};
use sluice_sandbox::{Backend, Sandbox, example, require_root};

/// The address Ingresses are served on.
const L7: &str = "198.18.100.80";

fn backends() -> Vec<Backend> {
    vec![
        Backend::http("petclinic-web-1", "198.18.1.111", &[8080]),
        Backend::http("petclinic-errors-1", "198.18.1.112", &[8080]),
        Backend::http("owners-1", "198.18.1.113", &[8080]),
    ]
}

/// `curl -i` from the client: (status, head, body).
fn curl(sb: &Sandbox, extra: &[&str], url: &str) -> (u16, String, String) {
    let mut args = vec!["curl", "-sS", "-i", "-g", "-m", "5"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = sb.exec("cl", &args).expect("curl");
    assert!(
        out.status.success(),
        "{url}: {}\ngateway:\n{}",
        String::from_utf8_lossy(&out.stderr),
        sb.log("gateway")
    );
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.trim().to_owned())
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn ingress_nginx_annotations_through_the_gateway() {
    if !require_root("ingress_nginx_annotations_through_the_gateway") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::new(&backends()).expect("sandbox");
    let (cert, key) = certificate(dir.path(), "secure.example", "secure.example").expect("certificate");
    let secret = tls_secret("tls-secret", &cert, &key).expect("secret");
    let auth = basic_auth_secret("basic-auth", "staff", "s3cret").expect("htpasswd");
    sb.set_manifests(
        &[example("ingress"), example("ingress-nginx")],
        &[("tls-secret.yaml", &secret), ("basic-auth.yaml", &auth)],
    )
    .expect("manifests");
    sb.start_control_with(&["--ingress-nginx-class"]).expect("control");
    sb.start_gateway(&["--l7-address", L7]).expect("gateway");
    sb.wait_l7_listeners(&[L7]).expect("L7 listeners");
    let http = |host: &str, path: &str, extra: &[&str]| {
        let mut args = vec!["-H", host];
        args.extend_from_slice(extra);
        curl(&sb, &args, &format!("http://{L7}{path}"))
    };

    // rewrite-target /$2 with the path /something(/|$)(.*): the backend reads the groups.
    for (path, upstream) in
        [("/something", "/"), ("/something/new", "/new"), ("/SomeThing/a/b?x=1", "/a/b?x=1")]
    {
        let (status, head, body) = http("Host: rewrite.example", path, &[]);
        assert_eq!((status, body.as_str()), (200, "owners-1"), "{path}: {head}");
        assert_eq!(header(&head, "x-request-uri"), Some(upstream), "{path}: {head}");
    }
    assert_eq!(http("Host: rewrite.example", "/other", &[]).0, 404);

    // ssl-redirect: 308 to HTTPS for the host with a certificate; over HTTPS, HSTS; app-root.
    let (status, head, _) = http("Host: secure.example", "/owners/", &[]);
    assert_eq!(status, 308, "{head}");
    assert_eq!(header(&head, "location"), Some("https://secure.example/owners"));
    let ca = dir.path().join("secure.example.crt").to_string_lossy().into_owned();
    let resolve = format!("secure.example:443:{L7}");
    let tls = ["--cacert", ca.as_str(), "--resolve", resolve.as_str()];
    let (status, head, body) = curl(&sb, &tls, "https://secure.example/vets");
    assert_eq!((status, body.as_str()), (200, "petclinic-web-1"), "{head}");
    assert_eq!(header(&head, "strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    let (status, head, _) = curl(&sb, &tls, "https://secure.example/");
    assert_eq!((status, header(&head, "location")), (302, Some("/app")), "{head}");
    // force-ssl-redirect without a certificate.
    let (status, head, _) = http("Host: forced.example", "/x?y=1", &[]);
    assert_eq!((status, header(&head, "location")), (308, Some("https://forced.example/x?y=1")), "{head}");

    // Basic auth: 401 with the realm; wrong password 401; right one proxied.
    let (status, head, _) = http("Host: staff.example", "/", &[]);
    assert_eq!(status, 401, "{head}");
    assert_eq!(header(&head, "www-authenticate"), Some("Basic realm=\"Staff only\""));
    assert_eq!(http("Host: staff.example", "/", &["-u", "staff:wrong"]).0, 401);
    let (status, head, body) = http("Host: staff.example", "/", &["-u", "staff:s3cret"]);
    assert_eq!((status, body.as_str()), (200, "owners-1"), "{head}");
    assert!(sb.wait_counter("l7_auth_denied", 2) >= 2);

    // limit-rps 5, burst 5 × 1: twenty requests at once from one client see 503s, counted.
    let url = format!("http://{L7}/");
    // `-o` names one URL's output: one each.
    let mut args = vec!["curl", "-s", "-w", "%{http_code}\n", "-H", "Host: limited.example"];
    for _ in 0..20 {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let out = sb.exec("cl", &args).expect("curl");
    let codes = String::from_utf8_lossy(&out.stdout).into_owned();
    let ok = codes.lines().filter(|c| *c == "200").count();
    let limited = codes.lines().filter(|c| *c == "503").count();
    assert!(ok >= 5 && limited >= 5 && ok + limited == 20, "{codes}");
    assert!(sb.wait_counter("l7_limited", limited as u64) >= limited as u64);

    // The canary: X-Canary: always → owners; by weight, about 30 % of 200.
    for _ in 0..3 {
        let (status, _, body) = http("Host: canary.example", "/", &["-H", "X-Canary: always"]);
        assert_eq!((status, body.as_str()), (200, "owners-1"));
    }
    let (_, _, body) = http("Host: canary.example", "/", &["-H", "X-Canary: never"]);
    assert_eq!(body, "petclinic-web-1");
    let url = format!("http://{L7}/");
    let many: Vec<&str> = std::iter::repeat_n(url.as_str(), 200).collect();
    let mut args = vec!["curl", "-s", "-H", "Host: canary.example", "-w", "\n"];
    args.extend_from_slice(&many);
    let out = sb.exec("cl", &args).expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let canary = text.lines().filter(|l| l.trim() == "owners-1").count();
    let main = text.lines().filter(|l| l.trim() == "petclinic-web-1").count();
    assert_eq!(canary + main, 200, "{text}");
    assert!((30..=90).contains(&canary), "{canary} of 200 to the canary");

    // custom-headers: ConfigMap response-headers's fields on the response; proxy-set-headers:
    // upstream-headers's X-Echo on the request owners gets (which sends it back), the client's
    // own X-Echo dropped.
    let headers = |sb: &Sandbox| {
        let (status, head, body) =
            curl(sb, &["-H", "Host: headers.example", "-H", "X-Echo: from-client"], &url);
        assert_eq!((status, body.as_str()), (200, "owners-1"), "{head}");
        let field = |name: &str| header(&head, name).map(str::to_owned);
        (field("x-frame-options"), field("content-security-policy"), field("x-echo"))
    };
    let applied =
        (Some("DENY".to_owned()), Some("default-src 'self'".to_owned()), Some("set-by-sluice".to_owned()));
    assert_eq!(headers(&sb), applied);
    assert_eq!(
        header(&curl(&sb, &["-H", "Host: canary.example", "-H", "X-Echo: mine"], &url).1, "x-echo"),
        Some("mine"),
        "another Ingress's request keeps the client's field"
    );

    // Without the ConfigMaps (a directory re-read): the Ingress is served without the headers,
    // and control says which ConfigMap is missing; back with them, so are the headers.
    let ingresses = std::fs::read_to_string(example("ingress-nginx").join("ingresses.yaml")).unwrap();
    let extra = [("tls-secret.yaml", secret.as_str()), ("basic-auth.yaml", auth.as_str())];
    let mut without = extra.to_vec();
    without.push(("ingress-nginx-ingresses.yaml", ingresses.as_str()));
    type Seen = (Option<String>, Option<String>, Option<String>);
    let republish = |sb: &Sandbox, examples: &[std::path::PathBuf], extra: &[(&str, &str)], want: Seen| {
        let g = sb.generation().expect("a generation");
        sb.set_manifests(examples, extra).expect("manifests");
        sb.wait_generation(g + 1).expect("a new table");
        let deadline = Instant::now() + Duration::from_secs(5);
        while headers(sb) != want {
            assert!(Instant::now() < deadline, "{:?}\ncontrol:\n{}", headers(sb), sb.log("control"));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The client's own X-Echo reaches owners again.
    republish(&sb, &[example("ingress")], &without, (None, None, Some("from-client".to_owned())));
    let log = sb.log("control");
    for missing in [
        "nginx.ingress.kubernetes.io/custom-headers: ignored: ConfigMap default/response-headers does not exist",
        "nginx.ingress.kubernetes.io/proxy-set-headers: ignored: ConfigMap default/upstream-headers does not exist",
    ] {
        assert!(log.contains(missing), "{missing}\nin:\n{log}");
    }
    republish(&sb, &[example("ingress"), example("ingress-nginx")], &extra, applied);
}
