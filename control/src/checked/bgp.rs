//! MetalLB's BGP objects, checked: `BGPPeer` (metallb.io/v1beta2), `BGPAdvertisement` and
//! `BFDProfile` (metallb.io/v1beta1), so that a MetalLB user brings the configuration they have. What Sluice
//! does not do yet is refused with the field named, never ignored: a peer or an advertisement
//! half-understood would announce where the operator said not to.

use std::net::{IpAddr, Ipv4Addr};

use super::{Checked, Named, Problem, namespace_of, verdict};
use crate::objects::{self, LabelSelector};

/// The label every node carries, and the only one a node selector may name here (manifest mode
/// knows this node's name, `--node-name`, and no other label of it).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// A BGP session with a router, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    /// Its namespace.
    pub namespace: String,
    /// Its name (what an advertisement's `peers` names).
    pub name: String,
    /// `spec.myASN`.
    pub my_asn: u32,
    /// `spec.peerASN`.
    pub peer_asn: u32,
    /// `spec.peerAddress`.
    pub peer_address: IpAddr,
    /// `spec.sourceAddress`.
    pub source_address: Option<IpAddr>,
    /// `spec.peerPort` (179).
    pub peer_port: u16,
    /// `spec.holdTime`, seconds (0, or 3 and more).
    pub hold_s: Option<u32>,
    /// `spec.keepaliveTime`, seconds.
    pub keepalive_s: Option<u32>,
    /// `spec.connectTime`, seconds: how long to wait between connection attempts.
    pub connect_s: Option<u32>,
    /// `spec.routerID`.
    pub router_id: Option<Ipv4Addr>,
    /// The nodes it applies to (`spec.nodeSelectors` on [`HOSTNAME_LABEL`]); `None`: every node.
    pub nodes: Option<Vec<String>>,
    /// `spec.password` (TCP MD5).
    pub password: Option<String>,
    /// `spec.bfdProfile`: BFD on the session, with the timers of the [`BfdProfile`] of that name
    /// (in the peer's namespace).
    pub bfd_profile: Option<String>,
    /// `spec.enableGracefulRestart`.
    pub graceful_restart: bool,
    /// `spec.ebgpMultiHop`.
    pub multihop: bool,
}

impl Named for BgpPeer {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// A BGP community a route is tagged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Community {
    /// `ASN:VALUE`, 16 bits each (RFC 1997).
    Standard(u16, u16),
    /// `large:ASN:A:B`, 32 bits each (RFC 8092).
    Large(u32, u32, u32),
}

/// What to announce to which peers, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.aggregationLength` (32): announce the covering prefix of this length instead.
    pub aggregation_v4: u8,
    /// `spec.aggregationLengthV6` (128).
    pub aggregation_v6: u8,
    /// `spec.localPref` (iBGP sessions only).
    pub local_pref: Option<u32>,
    /// `spec.communities`.
    pub communities: Vec<Community>,
    /// `spec.ipAddressPools`: the pools whose addresses it announces; empty: every pool.
    pub pools: Vec<String>,
    /// `spec.peers`: the peers it announces to; empty: every peer.
    pub peers: Vec<String>,
    /// The nodes it applies to (`spec.nodeSelectors` on [`HOSTNAME_LABEL`]); `None`: every node.
    pub nodes: Option<Vec<String>>,
}

impl Named for BgpAdvertisement {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// An AS number (1..=4294967295; 0 is reserved).
fn asn(at: &str, v: Option<i64>, problems: &mut Vec<Problem>) -> u32 {
    match v.map(u32::try_from) {
        Some(Ok(n)) if n > 0 => n,
        None => {
            problems.push(Problem::new(at, "required: the AS number"));
            0
        }
        Some(_) => {
            problems
                .push(Problem::new(at, format!("{} is not an AS number (1 to 4294967295)", v.unwrap_or(0))));
            0
        }
    }
}

/// A Go duration of whole seconds (`90s`, `1m30s`, `3m`, `1h`), as MetalLB's fields take it.
pub(crate) fn seconds(s: &str) -> Option<u32> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0);
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let scale = match &rest[..unit] {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return None,
        };
        rest = &rest[unit..];
        total = total.checked_add(n.checked_mul(scale)?)?;
    }
    u32::try_from(total).ok()
}

fn duration(at: &str, v: Option<&str>, problems: &mut Vec<Problem>) -> Option<u32> {
    let v = v?;
    let s = seconds(v);
    if s.is_none() {
        problems.push(Problem::new(at, format!("{v:?} is not a duration in whole seconds (90s, 1m30s)")));
    }
    s
}

/// The node names a list of selectors admits, when each selects on [`HOSTNAME_LABEL`] alone;
/// `None` for no selector (every node).
pub(crate) fn nodes(
    at: &str,
    selectors: Option<&[LabelSelector]>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    let selectors = selectors.filter(|s| !s.is_empty())?;
    let mut names = Vec::new();
    for (i, s) in selectors.iter().enumerate() {
        let here = format!("{at}[{i}]");
        if s.match_expressions.as_ref().is_some_and(|e| !e.is_empty()) {
            problems.push(Problem::new(
                format!("{here}.matchExpressions"),
                format!("not supported yet: select nodes with matchLabels {{{HOSTNAME_LABEL}: NODE}}"),
            ));
        }
        for (k, v) in &s.match_labels {
            if k == HOSTNAME_LABEL {
                names.push(v.clone());
            } else {
                problems.push(Problem::new(
                    format!("{here}.matchLabels.{k}"),
                    format!(
                        "only {HOSTNAME_LABEL} can be matched here (Sluice knows no other label of its node)"
                    ),
                ));
            }
        }
    }
    Some(names)
}

/// Checks a BGPPeer.
pub fn bgp_peer(p: objects::BgpPeer) -> Checked<BgpPeer> {
    let mut problems = Vec::new();
    let s = &p.spec;
    let my_asn = asn("spec.myASN", s.my_asn, &mut problems);
    let peer_asn = match (&s.dynamic_asn, s.peer_asn) {
        (Some(_), _) => {
            problems.push(Problem::new("spec.dynamicASN", "not supported yet: give spec.peerASN"));
            0
        }
        (None, v) => asn("spec.peerASN", v, &mut problems),
    };
    let addr = |at: &str, v: &str, problems: &mut Vec<Problem>| {
        let a = v.parse::<IpAddr>();
        if a.is_err() {
            problems.push(Problem::new(at, format!("{v:?} is not an IP address")));
        }
        a.ok()
    };
    let peer_address = match (&s.peer_address, &s.interface) {
        (_, Some(_)) => {
            problems.push(Problem::new(
                "spec.interface",
                "not supported yet (BGP unnumbered): give spec.peerAddress",
            ));
            None
        }
        (Some(a), None) => addr("spec.peerAddress", a, &mut problems),
        (None, None) => {
            problems.push(Problem::new("spec.peerAddress", "required: the router's address"));
            None
        }
    };
    let source_address =
        s.source_address.as_deref().and_then(|a| addr("spec.sourceAddress", a, &mut problems));
    let peer_port = match s.peer_port.map(u16::try_from) {
        None => 179,
        Some(Ok(p)) if p > 0 => p,
        Some(_) => {
            problems.push(Problem::new("spec.peerPort", "not a port number (1 to 65535)"));
            0
        }
    };
    let hold_s = duration("spec.holdTime", s.hold_time.as_deref(), &mut problems);
    if let Some(h) = hold_s
        && (h == 1 || h == 2 || h > 65_535)
    {
        problems.push(Problem::new("spec.holdTime", "0 (no keepalives) or 3 to 65535 seconds (RFC 4271)"));
    }
    let keepalive_s = duration("spec.keepaliveTime", s.keepalive_time.as_deref(), &mut problems);
    if let (Some(k), Some(h)) = (keepalive_s, hold_s)
        && h > 0
        && k >= h
    {
        problems.push(Problem::new("spec.keepaliveTime", "must be shorter than spec.holdTime"));
    }
    let connect_s = duration("spec.connectTime", s.connect_time.as_deref(), &mut problems);
    let router_id = s.router_id.as_deref().and_then(|r| {
        let id = r.parse::<Ipv4Addr>();
        if id.is_err() {
            problems.push(Problem::new("spec.routerID", format!("{r:?} is not an IPv4 address")));
        }
        id.ok()
    });
    let password = s.password.clone();
    if let Some(pw) = &password
        && (pw.is_empty()
            || pw.len() > 80
            || !pw.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'))
    {
        problems.push(Problem::new(
            "spec.password",
            "1 to 80 printable ASCII characters, no quote or backslash (BIRD takes it quoted)",
        ));
    }
    let bfd_profile = s.bfd_profile.clone().filter(|b| !b.is_empty());
    let bfd = bfd_profile.is_some();
    let multihop = s.ebgp_multi_hop.unwrap_or(false) || (s.my_asn.is_some() && s.my_asn == s.peer_asn);
    if bfd && multihop && source_address.is_none() {
        problems.push(Problem::new(
            "spec.sourceAddress",
            "required with spec.bfdProfile on an iBGP or multihop session (BIRD's BFD needs the local address)",
        ));
    }
    if s.password_secret.is_some() {
        problems.push(Problem::new("spec.passwordSecret", "not supported yet: give spec.password"));
    }
    if s.vrf.as_deref().is_some_and(|v| !v.is_empty()) {
        problems.push(Problem::new("spec.vrf", "not supported yet"));
    }
    if s.disable_mp == Some(true) {
        problems
            .push(Problem::new("spec.disableMP", "not supported: BIRD negotiates each family on its own"));
    }
    let checked = BgpPeer {
        namespace: namespace_of(&p.metadata).to_owned(),
        name: p.metadata.name.clone().unwrap_or_default(),
        my_asn,
        peer_asn,
        peer_address: peer_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        source_address,
        peer_port,
        hold_s,
        keepalive_s,
        connect_s,
        router_id,
        nodes: nodes("spec.nodeSelectors", s.node_selectors.as_deref(), &mut problems),
        password,
        bfd_profile,
        graceful_restart: s.enable_graceful_restart.unwrap_or(false),
        multihop: s.ebgp_multi_hop.unwrap_or(false),
    };
    verdict(checked, problems)
}

/// BFD timers, checked (MetalLB's `BFDProfile`). Each is `None` where the profile leaves it to
/// BIRD's default (MetalLB's defaults are the same: 300 ms, 300 ms, 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    /// Its namespace.
    pub namespace: String,
    /// Its name (what a peer's `bfdProfile` names).
    pub name: String,
    /// `spec.receiveInterval`, milliseconds: BIRD's `min rx interval`.
    pub receive_ms: Option<u32>,
    /// `spec.transmitInterval`, milliseconds: BIRD's `min tx interval`.
    pub transmit_ms: Option<u32>,
    /// `spec.detectMultiplier`: BIRD's `multiplier`.
    pub multiplier: Option<u32>,
    /// `spec.passiveMode`: wait for the peer to start the session (BIRD's `passive`).
    pub passive: bool,
}

impl Named for BfdProfile {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a BFDProfile. MetalLB's ranges: intervals 10 to 60000 ms, multiplier 2 to 255. What
/// BIRD 2's BFD cannot do is refused: echo mode (BIRD sends no echo packets) and a minimum TTL
/// (BIRD checks TTL 255 on single-hop sessions and has no setting for multihop ones).
pub fn bfd_profile(p: objects::BfdProfile) -> Checked<BfdProfile> {
    let mut problems = Vec::new();
    let s = &p.spec;
    let mut ranged = |at: &str, v: Option<i64>, lo: i64, hi: i64, unit: &str| {
        let v = v?;
        if !(lo..=hi).contains(&v) {
            problems.push(Problem::new(at, format!("{v} is out of range: {lo} to {hi}{unit}")));
            return None;
        }
        u32::try_from(v).ok()
    };
    let receive_ms = ranged("spec.receiveInterval", s.receive_interval, 10, 60_000, " ms");
    let transmit_ms = ranged("spec.transmitInterval", s.transmit_interval, 10, 60_000, " ms");
    let multiplier = ranged("spec.detectMultiplier", s.detect_multiplier, 2, 255, "");
    if s.echo_mode == Some(true) {
        problems.push(Problem::new(
            "spec.echoMode",
            "not supported: BIRD's BFD has no echo mode; remove it (BFD control packets still run)",
        ));
    }
    if s.echo_interval.is_some() {
        problems.push(Problem::new("spec.echoInterval", "not supported: BIRD's BFD has no echo mode"));
    }
    if s.minimum_ttl.is_some() {
        problems.push(Problem::new(
            "spec.minimumTtl",
            "not supported: BIRD's BFD has no minimum TTL setting (single-hop sessions require TTL 255)",
        ));
    }
    let checked = BfdProfile {
        namespace: namespace_of(&p.metadata).to_owned(),
        name: p.metadata.name.clone().unwrap_or_default(),
        receive_ms,
        transmit_ms,
        multiplier,
        passive: s.passive_mode.unwrap_or(false),
    };
    verdict(checked, problems)
}

/// The peers whose `bfdProfile` names no profile of `profiles` (in the peer's namespace): an
/// error each, `BGPPeer ns/name: spec.bfdProfile: …`. Such a peer is not opened: BFD at timers
/// the operator did not choose would declare the router down when they meant it up, or the
/// reverse.
pub fn missing_bfd_profiles(peers: &[BgpPeer], profiles: &[BfdProfile]) -> Vec<(String, String)> {
    peers
        .iter()
        .filter_map(|p| {
            let name = p.bfd_profile.as_ref()?;
            let found = profiles.iter().any(|b| &b.name == name && b.namespace == p.namespace);
            (!found).then(|| {
                (
                    format!("{}/{}", p.namespace, p.name),
                    format!(
                        "BGPPeer {}/{}: spec.bfdProfile: no BFDProfile {name:?} in namespace {:?}; the session is not opened",
                        p.namespace, p.name, p.namespace
                    ),
                )
            })
        })
        .collect()
}

/// A community as MetalLB spells one: `ASN:VALUE` or `large:ASN:A:B`.
pub(crate) fn community(s: &str) -> Option<Community> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [a, b] => Some(Community::Standard(a.parse().ok()?, b.parse().ok()?)),
        ["large", a, b, c] => Some(Community::Large(a.parse().ok()?, b.parse().ok()?, c.parse().ok()?)),
        _ => None,
    }
}

/// Checks a BGPAdvertisement.
pub fn bgp_advertisement(a: objects::BgpAdvertisement) -> Checked<BgpAdvertisement> {
    let mut problems = Vec::new();
    let s = &a.spec;
    let length = |at: &str, v: Option<i64>, max: u8, problems: &mut Vec<Problem>| match v.map(u8::try_from) {
        None => max,
        Some(Ok(n)) if n <= max => n,
        Some(_) => {
            problems.push(Problem::new(at, format!("a prefix length of 0 to {max}")));
            max
        }
    };
    let aggregation_v4 = length("spec.aggregationLength", s.aggregation_length, 32, &mut problems);
    let aggregation_v6 = length("spec.aggregationLengthV6", s.aggregation_length_v6, 128, &mut problems);
    let local_pref = s.local_pref.and_then(|p| {
        let v = u32::try_from(p);
        if v.is_err() {
            problems.push(Problem::new("spec.localPref", "0 to 4294967295"));
        }
        v.ok()
    });
    let mut communities = Vec::new();
    for (i, c) in s.communities.iter().flatten().enumerate() {
        match community(c) {
            Some(c) => communities.push(c),
            None => problems.push(Problem::new(
                format!("spec.communities[{i}]"),
                format!("{c:?} is not ASN:VALUE (16 bits each) or large:ASN:A:B (32 bits each); named Community objects are not supported yet"),
            )),
        }
    }
    if s.ip_address_pool_selectors.as_ref().is_some_and(|v| !v.is_empty()) {
        problems.push(Problem::new(
            "spec.ipAddressPoolSelectors",
            "not supported yet: name the pools in spec.ipAddressPools",
        ));
    }
    let checked = BgpAdvertisement {
        namespace: namespace_of(&a.metadata).to_owned(),
        name: a.metadata.name.clone().unwrap_or_default(),
        aggregation_v4,
        aggregation_v6,
        local_pref,
        communities,
        pools: s.ip_address_pools.clone().unwrap_or_default(),
        peers: s.peers.clone().unwrap_or_default(),
        nodes: nodes("spec.nodeSelectors", s.node_selectors.as_deref(), &mut problems),
    };
    verdict(checked, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(yaml: &str) -> Checked<BgpPeer> {
        bgp_peer(serde_norway::from_str(yaml).expect("parses"))
    }

    fn fields(c: Checked<impl std::fmt::Debug>) -> Vec<String> {
        c.expect_err("refused").into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_metallb_peer_is_read_with_its_defaults() {
        let p = peer(
            "metadata: {name: r1, namespace: metallb-system}\n\
             spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, holdTime: 1m30s, keepaliveTime: 30s, bfdProfile: fast, \
             ebgpMultiHop: true, sourceAddress: 192.0.2.11}",
        )
        .unwrap();
        assert_eq!((p.my_asn, p.peer_asn, p.peer_port), (64512, 64513, 179));
        assert_eq!((p.hold_s, p.keepalive_s, p.multihop), (Some(90), Some(30), true));
        assert_eq!(p.bfd_profile.as_deref(), Some("fast"));
        assert_eq!(p.nodes, None);
    }

    #[test]
    fn what_is_wrong_or_not_done_is_named_by_field() {
        let got = fields(peer(
            "metadata: {name: r1}\n\
             spec: {myASN: 0, peerAddress: router, holdTime: 2s, password: 'a\"b', vrf: red, \
             nodeSelectors: [{matchLabels: {rack: a}}]}",
        ));
        assert_eq!(
            got,
            [
                "spec.myASN",
                "spec.peerASN",
                "spec.peerAddress",
                "spec.holdTime",
                "spec.password",
                "spec.vrf",
                "spec.nodeSelectors[0].matchLabels.rack"
            ]
        );
        let got = fields(bgp_advertisement(
            serde_norway::from_str(
                "metadata: {name: a}\nspec: {aggregationLength: 33, communities: ['65535:65536', 'no-export'], \
                 ipAddressPoolSelectors: [{matchLabels: {x: y}}]}",
            )
            .unwrap(),
        ));
        assert_eq!(
            got,
            [
                "spec.aggregationLength",
                "spec.communities[0]",
                "spec.communities[1]",
                "spec.ipAddressPoolSelectors"
            ]
        );
    }

    #[test]
    fn durations_and_communities_read_as_metallb_writes_them() {
        assert_eq!(seconds("90s"), Some(90));
        assert_eq!(seconds("1m30s"), Some(90));
        assert_eq!(seconds("1h"), Some(3600));
        assert_eq!(seconds("0"), Some(0));
        assert_eq!(seconds("1.5s"), None);
        assert_eq!(seconds("300ms"), None);
        assert_eq!(seconds(""), None);
        assert_eq!(community("64512:100"), Some(Community::Standard(64512, 100)));
        assert_eq!(community("large:4200000000:1:2"), Some(Community::Large(4_200_000_000, 1, 2)));
        assert_eq!(community("64512:70000"), None);
    }

    #[test]
    fn a_node_selector_on_the_hostname_names_nodes() {
        let p = peer(
            "metadata: {name: r1}\nspec: {myASN: 1, peerASN: 2, peerAddress: '2001:db8::1', \
             nodeSelectors: [{matchLabels: {kubernetes.io/hostname: gw-1}}, {matchLabels: {kubernetes.io/hostname: gw-2}}]}",
        )
        .unwrap();
        assert_eq!(p.nodes, Some(vec!["gw-1".to_owned(), "gw-2".to_owned()]));
    }

    #[test]
    fn a_bfd_profile_is_read_checked_and_what_bird_cannot_do_is_refused() {
        let profile = |yaml: &str| bfd_profile(serde_norway::from_str(yaml).expect("parses"));
        let p = profile(
            "metadata: {name: fast, namespace: metallb-system}\n\
             spec: {receiveInterval: 100, transmitInterval: 150, detectMultiplier: 4, passiveMode: true, echoMode: false}",
        )
        .unwrap();
        assert_eq!(
            (p.receive_ms, p.transmit_ms, p.multiplier, p.passive),
            (Some(100), Some(150), Some(4), true)
        );
        let p = profile("metadata: {name: dflt}\nspec: {}").unwrap();
        assert_eq!((p.receive_ms, p.transmit_ms, p.multiplier, p.passive), (None, None, None, false));
        let got = fields(profile(
            "metadata: {name: bad}\nspec: {receiveInterval: 5, transmitInterval: 60001, detectMultiplier: 1, \
             echoMode: true, echoInterval: 50, minimumTtl: 254}",
        ));
        assert_eq!(
            got,
            [
                "spec.receiveInterval",
                "spec.transmitInterval",
                "spec.detectMultiplier",
                "spec.echoMode",
                "spec.echoInterval",
                "spec.minimumTtl"
            ]
        );
    }

    #[test]
    fn a_peer_naming_a_missing_profile_is_an_error_naming_it() {
        let p = peer(
            "metadata: {name: r1, namespace: metallb-system}\n\
             spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.1, bfdProfile: fast}",
        )
        .unwrap();
        let fast = |ns: &str| BfdProfile {
            namespace: ns.into(),
            name: "fast".into(),
            receive_ms: None,
            transmit_ms: None,
            multiplier: None,
            passive: false,
        };
        assert!(missing_bfd_profiles(std::slice::from_ref(&p), &[fast("metallb-system")]).is_empty());
        let missing = missing_bfd_profiles(std::slice::from_ref(&p), &[fast("other")]);
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0].1.starts_with("BGPPeer metallb-system/r1: spec.bfdProfile: no BFDProfile \"fast\""),
            "{missing:?}"
        );
    }
}
