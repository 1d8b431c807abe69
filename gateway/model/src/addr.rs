//! One address type for both families, as the flow table and the service index see it.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// An IPv4 or IPv6 address in 16 bytes: IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291
/// §2.5.5.2), so keys of both families have one size and compare with one instruction sequence.
#[derive(Clone, Copy, Eq, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct Addr(pub [u8; 16]);

impl core::hash::Hash for Addr {
    #[inline(always)]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        u128::from_ne_bytes(self.0).hash(state);
    }
}

impl PartialEq for Addr {
    /// One 128-bit comparison rather than a byte-wise loop or a `memcmp` call.
    #[inline(always)]
    fn eq(&self, other: &Addr) -> bool {
        u128::from_ne_bytes(self.0) == u128::from_ne_bytes(other.0)
    }
}

impl Addr {
    /// The unspecified address of a family (used as the NodePort wildcard).
    pub const fn unspecified(family: Family) -> Addr {
        match family {
            Family::V4 => Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]),
            Family::V6 => Addr([0; 16]),
        }
    }

    /// An IPv4 address.
    #[inline(always)]
    pub const fn from_v4(o: [u8; 4]) -> Addr {
        // One 128-bit value, so the compiler emits one store rather than sixteen.
        Addr(((0xffff_u128 << 32) | u32::from_be_bytes(o) as u128).to_be_bytes())
    }

    /// An IPv6 address. An IPv4-mapped IPv6 address becomes indistinguishable from the IPv4
    /// address, which is why the data plane never takes one from an IPv6 header as a service
    /// address (see [`crate::packet`]).
    #[inline(always)]
    pub const fn from_v6(o: [u8; 16]) -> Addr {
        Addr(o)
    }

    /// The family.
    #[inline(always)]
    pub fn family(&self) -> Family {
        if u128::from_be_bytes(self.0) >> 32 == 0xffff { Family::V4 } else { Family::V6 }
    }

    /// The four IPv4 octets (meaningful only when the family is V4).
    #[inline(always)]
    pub fn v4(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    /// The sixteen bytes.
    #[inline(always)]
    pub fn v6(&self) -> [u8; 16] {
        self.0
    }

    /// As a standard library address.
    pub fn ip(&self) -> IpAddr {
        match self.family() {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(self.v4())),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => Addr::from_v4(a.octets()),
            IpAddr::V6(a) => Addr::from_v6(a.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(a: Ipv4Addr) -> Addr {
        Addr::from_v4(a.octets())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(a: Ipv6Addr) -> Addr {
        Addr::from_v6(a.octets())
    }
}

impl core::fmt::Debug for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.ip(), f)
    }
}

impl core::fmt::Display for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.ip(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_round_trip() {
        let a: Addr = "198.18.0.1".parse::<IpAddr>().unwrap().into();
        assert_eq!(a.family(), Family::V4);
        assert_eq!(a.v4(), [198, 18, 0, 1]);
        assert_eq!(a.to_string(), "198.18.0.1");
        let b: Addr = "2001:db8::1".parse::<IpAddr>().unwrap().into();
        assert_eq!(b.family(), Family::V6);
        assert_eq!(b.to_string(), "2001:db8::1");
        assert_eq!(Addr::unspecified(Family::V4).family(), Family::V4);
        assert_eq!(Addr::unspecified(Family::V6).family(), Family::V6);
    }
}
