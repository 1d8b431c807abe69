//! LoadBalancer address pools, in MetalLB's `IPAddressPool` form: ranges parsed once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{Checked, Named, Problem, namespace_of, verdict};
use crate::objects;

/// An inclusive range of addresses of one family: a pool entry written as an address, a CIDR
/// (`198.18.100.0/24`) or a range (`198.18.100.10-198.18.100.20`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange {
    first: IpAddr,
    last: IpAddr,
}

impl AddressRange {
    /// The first address.
    pub fn first(self) -> IpAddr {
        self.first
    }

    /// The last address.
    pub fn last(self) -> IpAddr {
        self.last
    }

    /// Whether `a` is in the range.
    pub fn contains(self, a: IpAddr) -> bool {
        a.is_ipv4() == self.first.is_ipv4()
            && (to_u128(self.first)..=to_u128(self.last)).contains(&to_u128(a))
    }

    /// Its addresses, in order (lazily: an IPv6 range may be vast).
    pub fn addresses(self) -> impl Iterator<Item = IpAddr> {
        let v4 = self.first.is_ipv4();
        (to_u128(self.first)..=to_u128(self.last)).map(move |n| from_u128(n, v4))
    }
}

impl FromStr for AddressRange {
    type Err = String;

    fn from_str(s: &str) -> Result<AddressRange, String> {
        parse(s).ok_or_else(|| {
            format!(
                "{s:?} is not an address, a CIDR (198.18.100.0/24) or a range (198.18.100.10-198.18.100.20)"
            )
        })
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

fn parse(s: &str) -> Option<AddressRange> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let (first, last): (IpAddr, IpAddr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        let ordered = first.is_ipv4() == last.is_ipv4() && to_u128(first) <= to_u128(last);
        return ordered.then_some(AddressRange { first, last });
    }
    if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().ok()?;
        let len: u32 = len.parse().ok()?;
        let width = if a.is_ipv4() { 32 } else { 128 };
        if len > width {
            return None;
        }
        let host_bits = width - len;
        let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        let base = to_u128(a) & !mask;
        return Some(AddressRange {
            first: from_u128(base, a.is_ipv4()),
            last: from_u128(base | mask, a.is_ipv4()),
        });
    }
    let a: IpAddr = s.parse().ok()?;
    Some(AddressRange { first: a, last: a })
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(x: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4((x as u32).into()) } else { IpAddr::V6(x.into()) }
}

/// An address pool, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Its namespace.
    pub namespace: String,
    /// Its name (what `metallb.io/address-pool` names).
    pub name: String,
    /// `spec.addresses`.
    pub ranges: Vec<AddressRange>,
    /// `spec.autoAssign` (default true): whether Services that name no pool get its addresses.
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`: no IPv4 address ending in .0 or .255.
    pub avoid_buggy_ips: bool,
}

impl Named for Pool {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// Checks an IPAddressPool.
pub fn pool(p: objects::IpAddressPool) -> Checked<Pool> {
    let mut problems = Vec::new();
    let mut ranges = Vec::new();
    for (i, a) in p.spec.addresses.iter().enumerate() {
        match a.parse() {
            Ok(r) => ranges.push(r),
            Err(e) => problems.push(Problem::new(format!("spec.addresses[{i}]"), e)),
        }
    }
    let checked = Pool {
        namespace: namespace_of(&p.metadata).to_owned(),
        name: p.metadata.name.clone().unwrap_or_default(),
        ranges,
        auto_assign: p.spec.auto_assign.unwrap_or(true),
        avoid_buggy_ips: p.spec.avoid_buggy_ips.unwrap_or(false),
    };
    verdict(checked, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Option<(String, String)> {
        s.parse::<AddressRange>().ok().map(|r| (r.first().to_string(), r.last().to_string()))
    }

    #[test]
    fn addresses_cidrs_and_ranges_parse() {
        let pair = |a: &str, b: &str| Some((a.to_owned(), b.to_owned()));
        assert_eq!(range("198.18.100.7"), pair("198.18.100.7", "198.18.100.7"));
        assert_eq!(range("198.18.100.9/30"), pair("198.18.100.8", "198.18.100.11"));
        assert_eq!(range(" 198.18.100.10 - 198.18.100.20 "), pair("198.18.100.10", "198.18.100.20"));
        assert_eq!(range("2001:db8::/127"), pair("2001:db8::", "2001:db8::1"));
        assert_eq!(range("198.18.100.20-198.18.100.10"), None, "backwards");
        assert_eq!(range("198.18.100.1-2001:db8::1"), None, "two families");
        assert_eq!(range("198.18.100.0/33"), None);
        assert_eq!(range("pool"), None);
    }

    #[test]
    fn a_range_holds_its_addresses_only() {
        let r: AddressRange = "198.18.100.254/31".parse().unwrap();
        let all: Vec<String> = r.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["198.18.100.254", "198.18.100.255"]);
        assert!(r.contains("198.18.100.255".parse().unwrap()));
        assert!(!r.contains("198.18.101.0".parse().unwrap()));
        assert!(!r.contains("::ffff:198.18.100.254".parse().unwrap()), "another family");
    }
}
