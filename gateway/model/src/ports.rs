//! Port ranges both processes must agree on, each written once: the SNAT source ports FullNAT
//! takes (whose replies the XDP program steers to the workers), Kubernetes' NodePort range, and
//! Linux's default ephemeral range (where the host's own connections, and the L7 stage's
//! upstream connections, take their source ports).
//!
//! The three must not overlap on an address the gateway shares with its host: a reply to one of
//! the host's connections that falls in the SNAT range would be steered to a worker and lost,
//! and a NodePort inside it could not be told from a FullNAT reply. The default SNAT range,
//! [`SNAT_DEFAULT`], sits below both.

use core::fmt;
use core::str::FromStr;

/// An inclusive range of ports, never empty and never containing port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

/// Kubernetes' NodePort range (the API server's `--service-node-port-range` default).
pub const NODE_PORTS: PortRange = PortRange { lo: 30_000, hi: 32_767 };

/// Linux's default ephemeral range (`net.ipv4.ip_local_port_range`); the gateway reads the
/// machine's own value, this is what it is unless someone changed it.
pub const EPHEMERAL_DEFAULT: PortRange = PortRange { lo: 32_768, hi: 60_999 };

/// The SNAT source ports FullNAT uses unless told otherwise: 20,000 ports below the NodePort
/// and ephemeral ranges, above the well-known and most registered service ports.
pub const SNAT_DEFAULT: PortRange = PortRange { lo: 10_000, hi: 29_999 };

/// Why a port range was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRangeError {
    /// Not `LO-HI` with two port numbers.
    Syntax(String),
    /// LO is 0 or above HI.
    Empty {
        /// The low end.
        lo: u16,
        /// The high end.
        hi: u16,
    },
}

impl fmt::Display for PortRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRangeError::Syntax(s) => write!(f, "{s:?} is not a port range LO-HI (e.g. {SNAT_DEFAULT})"),
            PortRangeError::Empty { lo, hi } => write!(f, "{lo}-{hi} is empty: need 0 < LO <= HI"),
        }
    }
}

impl std::error::Error for PortRangeError {}

impl PortRange {
    /// `lo..=hi`, if `0 < lo <= hi`.
    pub const fn new(lo: u16, hi: u16) -> Result<PortRange, PortRangeError> {
        if lo == 0 || lo > hi {
            return Err(PortRangeError::Empty { lo, hi });
        }
        Ok(PortRange { lo, hi })
    }

    /// The lowest port.
    pub const fn lo(self) -> u16 {
        self.lo
    }

    /// The highest port.
    pub const fn hi(self) -> u16 {
        self.hi
    }

    /// How many ports.
    pub const fn len(self) -> u32 {
        self.hi as u32 - self.lo as u32 + 1
    }

    /// Never: a range holds at least one port.
    pub const fn is_empty(self) -> bool {
        false
    }

    /// Whether `port` is in the range.
    #[inline(always)]
    pub const fn contains(self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    /// Whether the two ranges share a port.
    pub const fn overlaps(self, other: PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Ports in each of `workers` equal shares (the last share also takes the remainder).
    #[inline]
    pub const fn share_len(self, workers: usize) -> u32 {
        let w = if workers == 0 { 1 } else { workers as u32 };
        let per = self.len() / w;
        if per == 0 { 1 } else { per }
    }

    /// Share `i` of `workers` equal shares, in worker order; `None` when the range has fewer
    /// ports than there are workers.
    pub fn share(self, workers: usize, i: usize) -> Option<PortRange> {
        if workers == 0 || i >= workers || self.len() < workers as u32 {
            return None;
        }
        let per = self.share_len(workers);
        let lo = u32::from(self.lo) + i as u32 * per;
        let hi = if i + 1 == workers { u32::from(self.hi) } else { lo + per - 1 };
        Some(PortRange { lo: lo as u16, hi: hi as u16 })
    }

    /// Which of `workers` equal shares holds `port` (a port of the range).
    #[inline]
    pub fn share_of(self, workers: usize, port: u16) -> usize {
        let per = self.share_len(workers);
        ((u32::from(port.saturating_sub(self.lo)) / per) as usize).min(workers.saturating_sub(1))
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;
    /// `LO-HI`, as `--snat-ports` and `ip_local_port_range` (tab-separated there) write it.
    fn from_str(s: &str) -> Result<PortRange, PortRangeError> {
        let syntax = || PortRangeError::Syntax(s.to_owned());
        let t = s.trim();
        let (a, b) = t.split_once(['-', '\t', ' ']).ok_or_else(syntax)?;
        let lo: u16 = a.trim().parse().map_err(|_| syntax())?;
        let hi: u16 = b.trim().parse().map_err(|_| syntax())?;
        PortRange::new(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_snat_range_is_clear_of_node_ports_and_ephemeral_ports() {
        assert!(!SNAT_DEFAULT.overlaps(NODE_PORTS));
        assert!(!SNAT_DEFAULT.overlaps(EPHEMERAL_DEFAULT));
        assert!(NODE_PORTS.overlaps(PortRange::new(32_767, 40_000).unwrap()));
        assert_eq!(SNAT_DEFAULT.len(), 20_000);
    }

    #[test]
    fn ranges_parse_as_written_and_refuse_nonsense() {
        assert_eq!("10000-29999".parse(), Ok(SNAT_DEFAULT));
        assert_eq!("32768\t60999\n".parse(), Ok(EPHEMERAL_DEFAULT));
        assert_eq!("5-4".parse::<PortRange>(), Err(PortRangeError::Empty { lo: 5, hi: 4 }));
        assert_eq!("0-4".parse::<PortRange>(), Err(PortRangeError::Empty { lo: 0, hi: 4 }));
        for bad in ["", "10000", "a-b", "1-70000", "-1-5"] {
            assert!(matches!(bad.parse::<PortRange>(), Err(PortRangeError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn shares_cover_the_range_once_and_each_port_finds_its_share() {
        for workers in 1..=7 {
            let shares: Vec<PortRange> =
                (0..workers).map(|i| SNAT_DEFAULT.share(workers, i).unwrap()).collect();
            assert_eq!(shares[0].lo(), SNAT_DEFAULT.lo());
            assert_eq!(shares[workers - 1].hi(), SNAT_DEFAULT.hi());
            for w in shares.windows(2) {
                assert_eq!(w[0].hi() + 1, w[1].lo());
            }
            for (i, s) in shares.iter().enumerate() {
                for p in [s.lo(), s.hi(), s.lo() + (s.hi() - s.lo()) / 2] {
                    assert_eq!(SNAT_DEFAULT.share_of(workers, p), i);
                }
            }
        }
        let tiny = PortRange::new(7, 8).unwrap();
        assert_eq!(tiny.share(3, 0), None, "fewer ports than workers");
        assert_eq!(tiny.share(2, 1), Some(PortRange::new(8, 8).unwrap()));
    }
}
