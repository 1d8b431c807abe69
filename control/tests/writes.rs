//! The leader's writes, request by request, against `tower-test`'s mock service (no API server can
//! run here): what goes on the wire for a status write by server-side apply and for a Lease, and
//! what happens when the API server says no (409 Conflict, 500).

use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use sluice_control::checked::{self, Service};
use sluice_control::leader::{LeaderLease, clear_load_balancer_status, write_load_balancer_status};
use tower_test::mock::{self, Handle};

type MockHandle = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (kube::Client, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

async fn json_body(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.expect("request body");
    serde_json::from_slice(&bytes).expect("a JSON body")
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("response")
}

fn api_status(code: u16, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": reason,
           "reason": reason, "code": code})
}

fn web() -> Service {
    let raw = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
    .expect("a Service");
    checked::service(raw).expect("a valid Service")
}

/// Runs `call` while `serve` answers the requests it makes; both bounded in time.
async fn exchange<T, F, S>(call: F, serve: S) -> T
where
    F: std::future::Future<Output = T>,
    S: std::future::Future<Output = ()>,
{
    let (out, ()) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(call, serve) })
        .await
        .expect("the exchange finished");
    out
}

#[tokio::test]
async fn status_is_written_by_server_side_apply() {
    let (client, mut handle) = mock_client();
    let ips = ["198.18.100.1".parse().unwrap(), "2001:db8::100".parse().unwrap()];
    let svc = web();
    let wrote = exchange(write_load_balancer_status(client, &svc, &ips), async {
        let (req, reply) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), "PATCH");
        assert_eq!(req.uri().path(), "/api/v1/namespaces/shop/services/web/status");
        let query = req.uri().query().unwrap_or("");
        assert!(query.contains("fieldManager=sluice.io%2Flb"), "{query}");
        assert!(query.contains("force=true"), "{query}");
        assert_eq!(req.headers()["content-type"], "application/apply-patch+yaml");
        let body = json_body(req).await;
        assert_eq!(
            body,
            json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {"ingress": [
                {"ip": "198.18.100.1", "ipMode": "VIP"}, {"ip": "2001:db8::100", "ipMode": "VIP"}]}}})
        );
        let applied = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "2"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}, "status": body["status"]});
        reply.send_response(respond(StatusCode::OK, &applied));
    })
    .await;
    assert!(wrote.expect("written"));
}

#[tokio::test]
async fn status_already_right_is_not_written() {
    let (client, mut handle) = mock_client();
    let mut svc = web();
    svc.status_ips = vec!["198.18.100.1".parse().unwrap()];
    // A request would wait forever for the mock to answer: the timeout turns that into a failure.
    let ips = ["198.18.100.1".parse().unwrap()];
    let write = write_load_balancer_status(client, &svc, &ips);
    let wrote = tokio::time::timeout(Duration::from_secs(5), write).await.expect("no request was made");
    assert!(!wrote.expect("no error"));
    // The mock saw nothing: its queue is empty and the client is gone.
    let next = tokio::time::timeout(Duration::from_secs(1), handle.next_request()).await;
    assert!(matches!(next, Ok(None)), "a request was made");
}

#[tokio::test]
async fn a_refused_status_write_is_an_error_not_a_panic() {
    let (client, mut handle) = mock_client();
    let svc = web();
    let out = exchange(write_load_balancer_status(client, &svc, &["198.18.100.1".parse().unwrap()]), async {
        let (_, reply) = handle.next_request().await.expect("a request");
        reply.send_response(respond(StatusCode::INTERNAL_SERVER_ERROR, &api_status(500, "InternalError")));
    })
    .await;
    match out {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 500),
        other => panic!("expected the API's 500, got {other:?}"),
    }
}

#[tokio::test]
async fn an_absent_lease_is_created_and_a_lost_race_is_not_leadership() {
    // Absent → POST the Lease naming us; the API server answers 409 (another replica created it
    // first): we are not the leader, and that is not an error.
    let (client, mut handle) = mock_client();
    let lease = LeaderLease::new(client, "sluice-system", "sluice-control", "gw-1", 15);
    let leading = exchange(lease.try_lead(), async {
        let (req, reply) = handle.next_request().await.expect("GET");
        assert_eq!(req.method(), "GET");
        assert_eq!(
            req.uri().path(),
            "/apis/coordination.k8s.io/v1/namespaces/sluice-system/leases/sluice-control"
        );
        reply.send_response(respond(StatusCode::NOT_FOUND, &api_status(404, "NotFound")));
        let (req, reply) = handle.next_request().await.expect("POST");
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().path(), "/apis/coordination.k8s.io/v1/namespaces/sluice-system/leases");
        let body = json_body(req).await;
        assert_eq!(body["metadata"]["name"], "sluice-control");
        assert_eq!(body["spec"]["holderIdentity"], "gw-1");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
        assert!(body["spec"]["renewTime"].is_string(), "{body}");
        reply.send_response(respond(StatusCode::CONFLICT, &api_status(409, "AlreadyExists")));
    })
    .await;
    assert!(!leading.expect("a conflict is not an error"));
}

#[tokio::test]
async fn an_expired_lease_is_taken_with_the_resource_version_read() {
    let (client, mut handle) = mock_client();
    let lease = LeaderLease::new(client, "default", "sluice-control", "gw-2", 15);
    let leading = exchange(lease.try_lead(), async {
        let (_, reply) = handle.next_request().await.expect("GET");
        let held = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "sluice-control", "namespace": "default", "resourceVersion": "77"},
            "spec": {"holderIdentity": "gw-1", "leaseDurationSeconds": 15, "leaseTransitions": 3,
                     "renewTime": "2020-01-01T00:00:00.000000Z"}});
        reply.send_response(respond(StatusCode::OK, &held));
        let (req, reply) = handle.next_request().await.expect("PUT");
        assert_eq!(req.method(), "PUT");
        assert_eq!(req.uri().path(), "/apis/coordination.k8s.io/v1/namespaces/default/leases/sluice-control");
        let mut body = json_body(req).await;
        assert_eq!(body["metadata"]["resourceVersion"], "77", "optimistic concurrency");
        assert_eq!(body["spec"]["holderIdentity"], "gw-2");
        assert_eq!(body["spec"]["leaseTransitions"], 4);
        body["metadata"]["resourceVersion"] = json!("78");
        reply.send_response(respond(StatusCode::OK, &body));
    })
    .await;
    assert!(leading.expect("taken"));
}

#[tokio::test]
async fn a_live_lease_of_another_holder_is_left_alone() {
    let (client, mut handle) = mock_client();
    let lease = LeaderLease::new(client, "default", "sluice-control", "gw-2", 15);
    let leading = exchange(lease.try_lead(), async {
        let (_, reply) = handle.next_request().await.expect("GET");
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let held = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "sluice-control", "namespace": "default", "resourceVersion": "5"},
            "spec": {"holderIdentity": "gw-1", "leaseDurationSeconds": 15, "renewTime": now}});
        reply.send_response(respond(StatusCode::OK, &held));
    })
    .await;
    assert!(!leading.expect("no error"));
}

/// Releasing an address applies an empty `status.loadBalancer` as our field manager: server-side
/// apply drops what we wrote and keeps what others did.
#[tokio::test]
async fn a_release_applies_an_empty_status_as_our_manager() {
    let (client, mut handle) = mock_client();
    let mut svc = web();
    svc.status_ips = vec!["198.18.100.1".parse().unwrap()];
    let out = exchange(clear_load_balancer_status(client, &svc), async {
        let (req, reply) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), "PATCH");
        assert_eq!(req.uri().path(), "/api/v1/namespaces/shop/services/web/status");
        let query = req.uri().query().unwrap_or("").to_owned();
        assert!(query.contains("fieldManager=sluice.io%2Flb") && query.contains("force=true"), "{query}");
        assert_eq!(req.headers()["content-type"], "application/apply-patch+yaml");
        let body = json_body(req).await;
        assert_eq!(body, json!({"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {}}}));
        let cleared = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}, "status": {"loadBalancer": {}}});
        reply.send_response(respond(StatusCode::OK, &cleared));
    })
    .await;
    out.expect("released");
}
