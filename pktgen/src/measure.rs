//! The receive side: which sequence numbers came back, in what order, how late.
//!
//! Sequence numbers are tracked in a sliding bitmap of [`WINDOW`] numbers behind the highest
//! seen: a number below the highest is a reordering (first time) or a duplicate (seen already);
//! one older than the window is counted as late (reordered, not checked for duplication). Loss
//! is what was sent and never seen. Latency is the receive time minus the transmit time carried
//! in the frame, recorded in an `hdrhistogram` (ns, 3 significant digits).

use hdrhistogram::Histogram;

/// Sequence numbers remembered behind the highest seen.
pub const WINDOW: u64 = 1 << 16;

/// What the receive side saw.
#[derive(Debug, Clone)]
pub struct Receiver {
    seen: Vec<u64>,
    highest: Option<u64>,
    /// Frames received with a measurement header.
    pub received: u64,
    /// Arrived after a higher sequence number (first time).
    pub reordered: u64,
    /// Arrived again.
    pub duplicates: u64,
    /// Latency (ns).
    pub latency: Histogram<u64>,
}

impl Default for Receiver {
    fn default() -> Receiver {
        Receiver::new()
    }
}

impl Receiver {
    /// An empty record.
    pub fn new() -> Receiver {
        Receiver {
            seen: vec![0; (WINDOW / 64) as usize],
            highest: None,
            received: 0,
            reordered: 0,
            duplicates: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!("valid bounds")),
        }
    }

    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = (seq % WINDOW) as usize;
        (&mut self.seen[i / 64], 1 << (i % 64))
    }

    /// Records frame `seq`, sent at `tx_ns`, received at `rx_ns`.
    pub fn record(&mut self, seq: u64, tx_ns: u64, rx_ns: u64) {
        self.received += 1;
        let _ = self.latency.record(rx_ns.saturating_sub(tx_ns).max(1));
        match self.highest {
            Some(h) if seq <= h => {
                if h - seq >= WINDOW {
                    self.reordered += 1;
                    return;
                }
                let (w, b) = self.bit(seq);
                if *w & b != 0 {
                    self.duplicates += 1;
                } else {
                    *w |= b;
                    self.reordered += 1;
                }
            }
            _ => {
                // Clear the bits of the numbers the window moves past.
                let from = self.highest.map_or(0, |h| h + 1);
                if seq - from >= WINDOW {
                    self.seen.fill(0);
                } else {
                    for s in from..seq {
                        let (w, b) = self.bit(s);
                        *w &= !b;
                    }
                }
                let (w, b) = self.bit(seq);
                *w |= b;
                self.highest = Some(seq);
            }
        }
    }

    /// Frames sent and never seen (duplicates do not make up for losses).
    pub fn lost(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.received - self.duplicates)
    }

    /// A latency percentile (ns), 0 without samples.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.latency.is_empty() { 0 } else { self.latency.value_at_quantile(p / 100.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_reordering_and_duplicates_are_told_apart() {
        let mut r = Receiver::new();
        for s in [0, 1, 3, 2, 2, 5, 4, 9] {
            r.record(s, 100, 100 + 1000 * (s + 1));
        }
        assert_eq!(r.received, 8);
        assert_eq!(r.duplicates, 1, "2 twice");
        assert_eq!(r.reordered, 2, "2 after 3, 4 after 5");
        assert_eq!(r.lost(10), 3, "6, 7 and 8 never came");
        assert!(r.percentile(50.0) >= 3000 && r.percentile(100.0) >= 9990);
    }

    #[test]
    fn the_window_slides_without_false_duplicates() {
        let mut r = Receiver::new();
        for s in 0..(3 * WINDOW) {
            r.record(s, 0, 1);
        }
        r.record(3 * WINDOW + 10, 0, 1);
        r.record(3 * WINDOW + 5, 0, 1);
        assert_eq!((r.duplicates, r.reordered), (0, 1));
        r.record(5, 0, 1);
        assert_eq!(r.reordered, 2, "older than the window: late, not a duplicate");
        assert_eq!(r.lost(3 * WINDOW + 11), 8);
    }
}
