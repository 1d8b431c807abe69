//! MetalLB's `L2Advertisement` (metallb.io/v1beta1), checked: which pools' addresses are
//! announced in L2 mode — one node per VIP answers ARP and neighbour solicitations for it —
//! and from which nodes (docs/l2.md). What Sluice cannot honour is refused with the field
//! named: an advertisement half understood would announce from a node the operator excluded.

use super::bgp::nodes;
use super::{Checked, Named, Problem, namespace_of, verdict};
use crate::objects;

/// An L2 advertisement, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Advertisement {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `spec.ipAddressPools`: the pools whose addresses it announces; empty: every pool.
    pub pools: Vec<String>,
    /// The nodes it may be announced from (`spec.nodeSelectors` on
    /// [`super::HOSTNAME_LABEL`]); `None`: every node.
    pub nodes: Option<Vec<String>>,
    /// `spec.interfaces`: the interfaces it may be announced on; empty: any. A node announces
    /// only on its gateway's client-facing interface, which control knows by
    /// `--l2-interface`: a node whose interface is not listed does not announce it.
    pub interfaces: Vec<String>,
}

impl Named for L2Advertisement {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks an L2Advertisement.
pub fn l2_advertisement(a: objects::L2Advertisement) -> Checked<L2Advertisement> {
    let mut problems = Vec::new();
    let s = &a.spec;
    if s.ip_address_pool_selectors.as_ref().is_some_and(|v| !v.is_empty()) {
        problems.push(Problem::new(
            "spec.ipAddressPoolSelectors",
            "not supported yet: name the pools in spec.ipAddressPools",
        ));
    }
    let interfaces = s.interfaces.clone().unwrap_or_default();
    for (i, name) in interfaces.iter().enumerate() {
        // Linux's rule for an interface name (IFNAMSIZ, no slash or space).
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
            problems.push(Problem::new(
                format!("spec.interfaces[{i}]"),
                format!("{name:?} is not an interface name"),
            ));
        }
    }
    let checked = L2Advertisement {
        namespace: namespace_of(&a.metadata).to_owned(),
        name: a.metadata.name.clone().unwrap_or_default(),
        pools: s.ip_address_pools.clone().unwrap_or_default(),
        nodes: nodes("spec.nodeSelectors", s.node_selectors.as_deref(), &mut problems),
        interfaces,
    };
    verdict(checked, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adv(yaml: &str) -> Checked<L2Advertisement> {
        l2_advertisement(serde_norway::from_str(yaml).expect("parses"))
    }

    #[test]
    fn an_l2_advertisement_is_read_with_its_pools_nodes_and_interfaces() {
        let a = adv("metadata: {name: l2, namespace: metallb-system}\n\
             spec: {ipAddressPools: [edge], interfaces: [eth0], \
             nodeSelectors: [{matchLabels: {kubernetes.io/hostname: gw-1}}]}")
        .unwrap();
        assert_eq!(a.pools, ["edge"]);
        assert_eq!(a.nodes, Some(vec!["gw-1".to_owned()]));
        assert_eq!(a.interfaces, ["eth0"]);
        // The empty advertisement: every pool, every node, any interface (MetalLB's meaning).
        let a = adv("metadata: {name: all}").unwrap();
        assert_eq!((a.pools.len(), a.nodes, a.interfaces.len()), (0, None, 0));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_field() {
        let got: Vec<String> = adv("metadata: {name: l2}\n\
             spec: {ipAddressPoolSelectors: [{matchLabels: {tier: edge}}], interfaces: ['bad/name'], \
             nodeSelectors: [{matchLabels: {rack: a}}, {matchExpressions: [{key: x, operator: Exists}]}]}")
        .expect_err("refused")
        .into_iter()
        .map(|p| p.field)
        .collect();
        assert_eq!(
            got,
            [
                "spec.ipAddressPoolSelectors",
                "spec.interfaces[0]",
                "spec.nodeSelectors[0].matchLabels.rack",
                "spec.nodeSelectors[1].matchExpressions"
            ]
        );
        // An unknown field is refused by the parse (deny_unknown_fields), as for every kind.
        assert!(serde_norway::from_str::<objects::L2Advertisement>("spec: {interface: eth0}").is_err());
    }
}
