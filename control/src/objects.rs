//! The Kubernetes objects control reads, as serde types that refuse unknown fields (as the API
//! server's strict field validation does), so a typo is an error naming the field, not a silently
//! ignored setting. Only the kinds and fields Sluice acts on are modelled in depth; fields that
//! are legal but of no use here (status details, managed fields, owner references…) are
//! [`Unread`]: accepted, so that `kubectl get -o yaml` dumps load unchanged, and skipped as they
//! are parsed — never built into a value, however large (managed fields often outweigh the rest
//! of the object). Annotations are kept: the L7 stage reads ingress-nginx's.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_norway::Value;

/// A field Sluice never reads: accepted where the API defines it, skipped unbuilt.
pub type Unread = serde::de::IgnoredAny;

/// `metadata` (meta/v1 ObjectMeta), every field the API defines.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    pub self_link: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    /// RFC 3339, as the API server writes it (`2025-01-01T00:00:00Z`); `null` in
    /// `kubectl create --dry-run -o yaml` output.
    pub creation_timestamp: Option<String>,
    pub deletion_timestamp: Option<Unread>,
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Option<Unread>,
    pub finalizers: Option<Unread>,
    pub managed_fields: Option<Unread>,
}

/// An int-or-string port (`targetPort`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name (a container port's name).
    Str(String),
}

/// core/v1 Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Service {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    pub status: Option<ServiceStatus>,
}

/// core/v1 ServiceSpec, every field of Kubernetes 1.33–1.37.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ServiceSpec {
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    pub selector: Option<BTreeMap<String, String>>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Option<Vec<String>>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(rename = "externalIPs", default)]
    pub external_ips: Vec<String>,
    pub session_affinity: Option<String>,
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    pub load_balancer_source_ranges: Option<Vec<String>>,
    pub external_name: Option<String>,
    pub external_traffic_policy: Option<String>,
    pub health_check_node_port: Option<i64>,
    pub publish_not_ready_addresses: Option<bool>,
    pub session_affinity_config: Option<SessionAffinityConfig>,
    pub ip_families: Option<Vec<String>>,
    pub ip_family_policy: Option<String>,
    pub allocate_load_balancer_node_ports: Option<bool>,
    pub load_balancer_class: Option<String>,
    pub internal_traffic_policy: Option<String>,
    pub traffic_distribution: Option<String>,
}

/// core/v1 ServicePort.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
    pub port: i64,
    pub target_port: Option<IntOrString>,
    pub node_port: Option<i64>,
}

/// `sessionAffinityConfig`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct SessionAffinityConfig {
    #[serde(rename = "clientIP")]
    pub client_ip: Option<ClientIpConfig>,
}

/// `sessionAffinityConfig.clientIP`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ClientIpConfig {
    pub timeout_seconds: Option<i64>,
}

/// core/v1 ServiceStatus (read for the LoadBalancer addresses a cluster dump already carries).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ServiceStatus {
    pub load_balancer: Option<LoadBalancerStatus>,
    pub conditions: Option<Unread>,
}

/// `status.loadBalancer`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LoadBalancerStatus {
    #[serde(default)]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// `status.loadBalancer.ingress[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LoadBalancerIngress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub ip_mode: Option<String>,
    pub ports: Option<Unread>,
}

/// discovery.k8s.io/v1 EndpointSlice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EndpointSlice {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub address_type: String,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

/// An EndpointSlice endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: EndpointConditions,
    pub hostname: Option<String>,
    pub target_ref: Option<Unread>,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    pub hints: Option<Unread>,
    pub deprecated_topology: Option<Unread>,
}

/// EndpointSlice conditions; absent means "unknown", which readers take as true (ready, serving)
/// or false (terminating), as the API documents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EndpointConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

/// An EndpointSlice port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

/// core/v1 Pod: its labels, addresses, readiness and container ports (what the endpoint
/// controller uses). The rest of the spec is checked against the PodSpec field names by
/// [`crate::checked`] rather than modelled (and its container ports read there).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Pod {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BTreeMap<String, Value>,
    pub status: Option<PodStatus>,
}

/// The parts of core/v1 PodStatus the endpoint controller reads; other status fields are kept
/// opaque.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PodStatus {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs", default)]
    pub pod_ips: Vec<PodIp>,
    #[serde(default)]
    pub conditions: Vec<PodCondition>,
    pub phase: Option<String>,
}

/// `status.podIPs[]`.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct PodIp {
    pub ip: String,
}

/// `status.conditions[]` (only type and status are read).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

/// A pool of LoadBalancer addresses, in MetalLB's `IPAddressPool` form (metallb.io/v1beta1), so
/// an existing MetalLB configuration loads as it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IpAddressPool {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: IpAddressPoolSpec,
    /// What MetalLB reports (assigned and available counts): read from a cluster, not used.
    #[serde(default)]
    pub status: Option<Unread>,
}

/// `IPAddressPool.spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IpAddressPoolSpec {
    pub addresses: Vec<String>,
    pub auto_assign: Option<bool>,
    #[serde(rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: Option<bool>,
    pub service_allocation: Option<Value>,
}

/// A BGP session, in MetalLB's `BGPPeer` form (metallb.io/v1beta2), so that a MetalLB user's
/// peers load as they are (docs/bgp.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BgpPeer {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: BgpPeerSpec,
    #[serde(default)]
    pub status: Option<Unread>,
}

/// `BGPPeer.spec` (every field MetalLB 0.14/0.15 defines; `Value` where Sluice only checks that
/// a field is absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BgpPeerSpec {
    #[serde(rename = "myASN")]
    pub my_asn: Option<i64>,
    #[serde(rename = "peerASN")]
    pub peer_asn: Option<i64>,
    #[serde(rename = "dynamicASN")]
    pub dynamic_asn: Option<String>,
    pub peer_address: Option<String>,
    pub source_address: Option<String>,
    pub peer_port: Option<i64>,
    pub hold_time: Option<String>,
    pub keepalive_time: Option<String>,
    pub connect_time: Option<String>,
    #[serde(rename = "routerID")]
    pub router_id: Option<String>,
    pub node_selectors: Option<Vec<LabelSelector>>,
    pub password: Option<String>,
    pub password_secret: Option<Value>,
    pub bfd_profile: Option<String>,
    pub enable_graceful_restart: Option<bool>,
    pub ebgp_multi_hop: Option<bool>,
    pub vrf: Option<String>,
    #[serde(rename = "disableMP")]
    pub disable_mp: Option<bool>,
    pub interface: Option<String>,
}

/// What to announce to which peers, in MetalLB's `BGPAdvertisement` form (metallb.io/v1beta1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BgpAdvertisement {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BgpAdvertisementSpec,
    #[serde(default)]
    pub status: Option<Unread>,
}

/// `BGPAdvertisement.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BgpAdvertisementSpec {
    pub aggregation_length: Option<i64>,
    #[serde(rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i64>,
    pub local_pref: Option<i64>,
    pub communities: Option<Vec<String>>,
    pub ip_address_pools: Option<Vec<String>>,
    pub ip_address_pool_selectors: Option<Vec<LabelSelector>>,
    pub node_selectors: Option<Vec<LabelSelector>>,
    pub peers: Option<Vec<String>>,
}

/// Which VIPs to announce in L2 mode from which nodes, in MetalLB's `L2Advertisement` form
/// (metallb.io/v1beta1): one node per VIP answers ARP / neighbour solicitations (docs/l2.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct L2Advertisement {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: L2AdvertisementSpec,
    #[serde(default)]
    pub status: Option<Unread>,
}

/// `L2Advertisement.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct L2AdvertisementSpec {
    pub ip_address_pools: Option<Vec<String>>,
    pub ip_address_pool_selectors: Option<Vec<LabelSelector>>,
    pub node_selectors: Option<Vec<LabelSelector>>,
    pub interfaces: Option<Vec<String>>,
}

/// BFD timers for BGP sessions, in MetalLB's `BFDProfile` form (metallb.io/v1beta1); a
/// BGPPeer's `bfdProfile` names one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BfdProfile {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BfdProfileSpec,
    #[serde(default)]
    pub status: Option<Unread>,
}

/// `BFDProfile.spec` (every field MetalLB 0.14/0.15 defines).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct BfdProfileSpec {
    pub receive_interval: Option<i64>,
    pub transmit_interval: Option<i64>,
    pub detect_multiplier: Option<i64>,
    pub echo_interval: Option<i64>,
    pub echo_mode: Option<bool>,
    pub passive_mode: Option<bool>,
    pub minimum_ttl: Option<i64>,
}

/// A label selector (meta/v1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Option<Vec<Value>>,
}

/// The PodSpec field names (core/v1, Kubernetes 1.33–1.37), for checking a Pod's spec without
/// modelling all of it.
pub const POD_SPEC_FIELDS: &[&str] = &[
    "activeDeadlineSeconds",
    "affinity",
    "automountServiceAccountToken",
    "containers",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "ephemeralContainers",
    "hostAliases",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "hostUsers",
    "hostname",
    "hostnameOverride",
    "imagePullSecrets",
    "initContainers",
    "nodeName",
    "nodeSelector",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "restartPolicy",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "subdomain",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
];

/// The Container field names (core/v1).
pub const CONTAINER_FIELDS: &[&str] = &[
    "args",
    "command",
    "env",
    "envFrom",
    "image",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "name",
    "ports",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "restartPolicyRules",
    "securityContext",
    "startupProbe",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
];

/// The ContainerPort field names (core/v1).
pub const CONTAINER_PORT_FIELDS: &[&str] = &["containerPort", "hostIP", "hostPort", "name", "protocol"];

/// core/v1 Endpoints (the legacy form of EndpointSlice; used for a selectorless Service that has
/// no EndpointSlice).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Endpoints {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub subsets: Vec<EndpointSubset>,
}

/// `Endpoints.subsets[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EndpointSubset {
    #[serde(default)]
    pub addresses: Vec<EndpointAddress>,
    #[serde(default)]
    pub not_ready_addresses: Vec<EndpointAddress>,
    #[serde(default)]
    pub ports: Vec<EndpointsPort>,
}

/// `Endpoints.subsets[].addresses[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EndpointAddress {
    pub ip: String,
    pub hostname: Option<String>,
    pub node_name: Option<String>,
    pub target_ref: Option<Unread>,
}

/// `Endpoints.subsets[].ports[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct EndpointsPort {
    pub name: Option<String>,
    pub port: i64,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

/// networking.k8s.io/v1 Ingress (validated here; routed by the L7 stage).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Ingress {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IngressSpec,
    pub status: Option<IngressStatus>,
}

/// networking/v1 IngressStatus (read for the addresses the leader compares its writes with).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressStatus {
    pub load_balancer: Option<IngressLoadBalancerStatus>,
}

/// `Ingress.status.loadBalancer`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressLoadBalancerStatus {
    #[serde(default)]
    pub ingress: Vec<IngressLoadBalancerIngress>,
}

/// `Ingress.status.loadBalancer.ingress[]`: networking/v1 IngressLoadBalancerIngress, which,
/// unlike a Service's entry, has no `ipMode`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressLoadBalancerIngress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub ports: Option<Unread>,
}

/// `Ingress.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressSpec {
    pub ingress_class_name: Option<String>,
    pub default_backend: Option<IngressBackend>,
    #[serde(default)]
    pub rules: Vec<IngressRule>,
    #[serde(default)]
    pub tls: Vec<IngressTls>,
}

/// `Ingress.spec.rules[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressRule {
    pub host: Option<String>,
    pub http: Option<HttpIngressRuleValue>,
}

/// `Ingress.spec.rules[].http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct HttpIngressRuleValue {
    pub paths: Vec<HttpIngressPath>,
}

/// `Ingress.spec.rules[].http.paths[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct HttpIngressPath {
    pub path: Option<String>,
    pub path_type: Option<String>,
    pub backend: IngressBackend,
}

/// An Ingress backend: a Service port, or a resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressBackend {
    pub service: Option<IngressServiceBackend>,
    pub resource: Option<Value>,
}

/// `backend.service`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressServiceBackend {
    pub name: String,
    pub port: Option<ServiceBackendPort>,
}

/// `backend.service.port`: a number or a name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ServiceBackendPort {
    pub name: Option<String>,
    pub number: Option<i64>,
}

/// `Ingress.spec.tls[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressTls {
    #[serde(default)]
    pub hosts: Vec<String>,
    pub secret_name: Option<String>,
}

/// networking.k8s.io/v1 IngressClass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressClass {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: IngressClassSpec,
}

/// `IngressClass.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct IngressClassSpec {
    pub controller: Option<String>,
    pub parameters: Option<Value>,
}

/// core/v1 Secret (TLS certificates, htpasswd files for basic auth).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Secret {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
    pub immutable: Option<bool>,
}

/// core/v1 ConfigMap (the header fields of `custom-headers` and `proxy-set-headers`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ConfigMap {
    // Defaulted: the loader has checked both before parsing, and a typed list's items
    // (`ServiceList`) state neither.
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Never read as headers; its keys only, to check them as the API server does (the
    /// base64 values are skipped unbuilt).
    #[serde(default)]
    pub binary_data: BTreeMap<String, Unread>,
    pub immutable: Option<bool>,
}
