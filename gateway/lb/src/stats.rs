//! A gateway worker's counters as one flat list: the order in which a worker publishes them to
//! the table file's stats region, and in which control names them in its metrics. Changing the
//! order changes what control reports: add at the end.

use crate::drop::DropReason;
use crate::engine::Counters;

/// The worker's own I/O counters, first.
/// The `xsk_*` ones are the kernel's AF_XDP socket counters (`XDP_STATISTICS`), filled in by the
/// gateway binary (zero for other ports).
pub const IO: [&str; 16] = [
    "rx_frames",
    "rx_bytes",
    "tx_frames",
    "kernel_frames",
    "batches",
    "neighbor_replies",
    "parked",
    "xsk_rx_dropped",
    "xsk_rx_ring_full",
    "xsk_fill_ring_empty",
    "xsk_invalid_descs",
    "xsk_wakeups",
    "handed_off",
    "handed_in",
    "port_copies",
    "tx_waits",
];

/// Where the counter named `name` of [`IO`] or [`L4`] sits in the list.
pub fn index(name: &str) -> Option<usize> {
    IO.iter().chain(L4.iter()).position(|n| *n == name)
}

/// The L4 engine's counters, next.
pub const L4: [&str; 12] = [
    "forwarded",
    "bounced",
    "passed",
    "new_flows",
    "adopted_flows",
    "affinity_hits",
    "flows_revalidated",
    "flows_orphaned",
    "icmp_echo_replies",
    "icmp_errors_translated",
    "table_changes",
    "snat_reclaimed",
];

/// How many counters a worker publishes: the above, then one per [`DropReason`].
pub const COUNT: usize = IO.len() + L4.len() + DropReason::COUNT;

/// What a worker publishes: the counters, then [`fingerprint`] at index [`COUNT`], so that a
/// reader built with another schema (another version of control) can tell instead of
/// mislabelling every counter, and a reader that never published (all zeros) is not a worker.
pub const LEN: usize = COUNT + 1;

/// A fingerprint of the schema: FNV-1a over the counter names in order.
pub fn fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b.iter().chain(b"\0") {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for n in IO.iter().chain(L4.iter()) {
        eat(n.as_bytes());
    }
    for r in DropReason::ALL {
        eat(r.name().as_bytes());
    }
    h | 1 // never 0, which means "never published"
}

/// What the counter at an index of the list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// A named counter of [`IO`] or [`L4`].
    Named(&'static str),
    /// Drops for one reason.
    Drop(DropReason),
}

/// The counter at each index.
pub fn schema() -> impl Iterator<Item = Stat> {
    IO.iter().chain(L4.iter()).map(|n| Stat::Named(n)).chain(DropReason::ALL.iter().map(|r| Stat::Drop(*r)))
}

/// Writes a worker's counters in schema order.
pub fn export(io: [u64; IO.len()], c: &Counters, out: &mut [u64; LEN]) {
    let l4 = [
        c.forwarded,
        c.bounced,
        c.passed,
        c.new_flows,
        c.adopted_flows,
        c.affinity_hits,
        c.flows_revalidated,
        c.flows_orphaned,
        c.icmp_echo_replies,
        c.icmp_errors_translated,
        c.table_changes,
        c.snat_reclaimed,
    ];
    out[COUNT] = fingerprint();
    let all = io.iter().chain(&l4).chain(&c.drops);
    for (o, v) in out.iter_mut().zip(all) {
        *o = *v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_and_export_agree() {
        assert_eq!(schema().count(), COUNT);
        let mut c = Counters { forwarded: 7, ..Counters::default() };
        c.drops[DropReason::NoBackend as usize] = 3;
        let mut out = [0u64; LEN];
        export([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], &c, &mut out);
        let at = |s: Stat| schema().position(|x| x == s).unwrap();
        assert_eq!(out[at(Stat::Named("rx_frames"))], 1);
        assert_eq!(out[at(Stat::Named("batches"))], 5);
        assert_eq!(out[at(Stat::Named("xsk_wakeups"))], 12);
        assert_eq!(index("xsk_wakeups"), Some(11));
        assert_eq!(index("forwarded"), Some(IO.len()));
        assert_eq!(out[COUNT], fingerprint());
        assert_ne!(fingerprint(), 0);
        assert_eq!(out[at(Stat::Named("forwarded"))], 7);
        assert_eq!(out[at(Stat::Drop(DropReason::NoBackend))], 3);
    }
}
