//! Backend choice for new flows: Maglev and the IPVS schedulers (rr, wrr, lc, sh, dh, sed, nq).
//!
//! State is per worker (workers share nothing writable): round-robin cursors, smooth-WRR
//! credits and active-connection counts. So `lc`, `sed` and `nq` balance each worker's own
//! connections, and the whole gateway's only approximately — the price of never sharing a cache
//! line between cores, and with RSS spreading flows evenly the approximation is close.
//! Connection counts follow IPVS's notion of *active* connections: a flow counts from its
//! creation until it closes (FIN both ways or RST) or disappears.
//!
//! `sh` and `dh` are consistent here (a Maglev lookup keyed by the source or destination
//! address) where IPVS uses a static 256-bucket table: the defining property — one client (one
//! destination) always lands on the same backend while the set is stable — is kept, and a
//! change of the set moves only the clients it must.
//!
//! Hot path: `pick` runs once per new flow; `rr`, `wrr`, `lc`, `sed`, `nq` are O(backends).

use sluice_model::addr::Addr;
use sluice_model::hash;
use sluice_model::service::{BackendId, Scheduler, Service, ServiceTable};

/// What a scheduler may look at.
#[derive(Debug, Clone, Copy)]
pub struct PickInput<'a> {
    /// Machine-independent hash of the flow's 5-tuple (Maglev's key).
    pub tuple_hash: u64,
    /// The client's address (`sh`).
    pub client: &'a Addr,
    /// The destination address the client used (`dh`).
    pub dst: &'a Addr,
}

/// One worker's scheduler state for one table generation.
#[derive(Debug, Clone, Default)]
pub struct SchedState {
    rr: Vec<u32>,
    credit: Vec<i64>,
    conns: Vec<u32>,
}

impl SchedState {
    /// Fresh state sized for `table`.
    pub fn for_table(table: &ServiceTable) -> SchedState {
        SchedState {
            rr: vec![0; table.services().len()],
            credit: vec![0; table.backends().len()],
            conns: vec![0; table.backends().len()],
        }
    }

    /// Active connections this worker has on a backend.
    pub fn connections(&self, b: BackendId) -> u32 {
        self.conns[b.0 as usize]
    }

    /// Counts a connection opened to `b`.
    #[inline]
    pub fn opened(&mut self, b: BackendId) {
        self.conns[b.0 as usize] += 1;
    }

    /// Counts a connection to `b` closed or gone.
    #[inline]
    pub fn closed(&mut self, b: BackendId) {
        let c = &mut self.conns[b.0 as usize];
        *c = c.saturating_sub(1);
    }

    /// Picks the offset (within the service's backends) of the backend for a new flow, or
    /// `None` when the service has no eligible backend.
    pub fn pick(&mut self, svc: &Service, table: &ServiceTable, input: &PickInput<'_>) -> Option<u16> {
        let el = &svc.eligible;
        if el.is_empty() {
            return None;
        }
        let base = svc.backends.start as usize;
        let weight = |o: u16| i64::from(table.backends()[base + o as usize].weight);
        let conns = |s: &SchedState, o: u16| i64::from(s.conns[base + o as usize]);
        match svc.scheduler {
            Scheduler::Maglev => svc.maglev.lookup(input.tuple_hash),
            Scheduler::SourceHash => svc.maglev.lookup(hash::stable(&input.client.0)),
            Scheduler::DestinationHash => svc.maglev.lookup(hash::stable(&input.dst.0)),
            Scheduler::RoundRobin => {
                let c = &mut self.rr[svc.id.0 as usize];
                let o = el[*c as usize % el.len()];
                *c = c.wrapping_add(1);
                Some(o)
            }
            Scheduler::WeightedRoundRobin => {
                // nginx's smooth weighted round robin: interleaved, exact over a cycle.
                let total: i64 = el.iter().map(|&o| weight(o)).sum();
                let mut best = el[0];
                for &o in el {
                    let cr = &mut self.credit[base + o as usize];
                    *cr += weight(o);
                    if *cr > self.credit[base + best as usize] {
                        best = o;
                    }
                }
                self.credit[base + best as usize] -= total;
                Some(best)
            }
            Scheduler::LeastConnections => el.iter().copied().min_by_key(|&o| conns(self, o)),
            Scheduler::ShortestExpectedDelay => Some(self.sed(el, &weight, &conns)),
            Scheduler::NeverQueue => el
                .iter()
                .copied()
                .find(|&o| conns(self, o) == 0)
                .or_else(|| Some(self.sed(el, &weight, &conns))),
        }
    }

    /// Shortest expected delay: the least `(C + 1) / W`, compared by cross-multiplication;
    /// ties go to the first in canonical order (as IPVS walks its list).
    fn sed(&self, el: &[u16], weight: &impl Fn(u16) -> i64, conns: &impl Fn(&SchedState, u16) -> i64) -> u16 {
        let mut best = el[0];
        for &o in &el[1..] {
            if (conns(self, o) + 1) * weight(best) < (conns(self, best) + 1) * weight(o) {
                best = o;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_model::service::*;

    fn table(sched: Scheduler, weights: &[u16]) -> ServiceTable {
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| BackendSpec {
                addr: Addr::from_v4([198, 18, 1, i as u8 + 1]),
                port: 80,
                weight: w,
                conditions: Conditions::READY,
            })
            .collect();
        ServiceTable::build(&TableSpec {
            services: vec![ServiceSpec {
                name: "s".into(),
                frontends: vec![ServiceKey {
                    frontend: Frontend::Address(Addr::from_v4([198, 19, 0, 1])),
                    port: 80,
                    protocol: Protocol::Tcp,
                }],
                backends,
                scheduler: sched,
                affinity: None,
                nat: NatMode::FullNat,
                snat: vec![Addr::from_v4([198, 18, 0, 1])],
            }],
            ..TableSpec::default()
        })
        .unwrap()
    }

    fn client(i: u32) -> Addr {
        let b = i.to_be_bytes();
        Addr::from_v4([198, 18, b[2], b[3]])
    }

    fn pick(st: &mut SchedState, t: &ServiceTable, i: u32) -> u16 {
        let c = client(i);
        let d = Addr::from_v4([198, 19, 0, 1]);
        st.pick(
            &t.services()[0],
            t,
            &PickInput { tuple_hash: hash::words(9, &[u64::from(i)]), client: &c, dst: &d },
        )
        .unwrap()
    }

    #[test]
    fn rr_cycles_in_order() {
        let t = table(Scheduler::RoundRobin, &[1, 1, 1]);
        let mut st = SchedState::for_table(&t);
        let got: Vec<u16> = (0..7).map(|i| pick(&mut st, &t, i)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn wrr_is_proportional_and_interleaved() {
        let t = table(Scheduler::WeightedRoundRobin, &[5, 1, 1]);
        let mut st = SchedState::for_table(&t);
        let got: Vec<u16> = (0..7).map(|i| pick(&mut st, &t, i)).collect();
        // nginx's documented sequence for weights 5,1,1: a a b a c a a.
        assert_eq!(got, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn lc_picks_least_connected() {
        let t = table(Scheduler::LeastConnections, &[1, 1, 1]);
        let mut st = SchedState::for_table(&t);
        let svc = &t.services()[0];
        st.opened(svc.backend_id(0));
        st.opened(svc.backend_id(0));
        st.opened(svc.backend_id(2));
        assert_eq!(pick(&mut st, &t, 0), 1);
        st.opened(svc.backend_id(1));
        st.opened(svc.backend_id(1));
        assert_eq!(pick(&mut st, &t, 0), 2, "2 has 1 connection, 0 and 1 have 2");
        st.closed(svc.backend_id(0));
        st.closed(svc.backend_id(0));
        assert_eq!(pick(&mut st, &t, 0), 0);
    }

    #[test]
    fn sed_weighs_expected_delay_and_nq_prefers_idle() {
        // weights 1 and 3; 1 connection on the heavy one: (0+1)/1 = 1 vs (1+1)/3 = 0.67 → heavy.
        let t = table(Scheduler::ShortestExpectedDelay, &[1, 3]);
        let mut st = SchedState::for_table(&t);
        st.opened(t.services()[0].backend_id(1));
        assert_eq!(pick(&mut st, &t, 0), 1);
        // nq: the idle light backend wins over the expected-delay choice.
        let t = table(Scheduler::NeverQueue, &[1, 3]);
        let mut st = SchedState::for_table(&t);
        st.opened(t.services()[0].backend_id(1));
        assert_eq!(pick(&mut st, &t, 0), 0);
        st.opened(t.services()[0].backend_id(0));
        // Both busy: sed decides — (1+1)/1 = 2 vs (1+1)/3 → heavy.
        assert_eq!(pick(&mut st, &t, 0), 1);
    }

    #[test]
    fn sh_is_sticky_per_client_and_dh_per_destination() {
        let t = table(Scheduler::SourceHash, &[1, 1, 1, 1]);
        let mut st = SchedState::for_table(&t);
        let mut seen = std::collections::HashSet::new();
        for c in 0..50 {
            let first = pick(&mut st, &t, c);
            seen.insert(first);
            for _ in 0..5 {
                assert_eq!(pick(&mut st, &t, c), first);
            }
        }
        assert_eq!(seen.len(), 4, "clients spread over every backend");
        let t = table(Scheduler::DestinationHash, &[1, 1, 1, 1]);
        let mut st = SchedState::for_table(&t);
        let first = pick(&mut st, &t, 0);
        assert!((0..100).all(|c| pick(&mut st, &t, c) == first), "one destination, one backend");
    }

    #[test]
    fn maglev_spreads_tuples() {
        let t = table(Scheduler::Maglev, &[1, 1, 1]);
        let mut st = SchedState::for_table(&t);
        let mut n = [0u32; 3];
        for i in 0..3000 {
            n[pick(&mut st, &t, i) as usize] += 1;
        }
        assert!(n.iter().all(|&c| (800..1200).contains(&c)), "{n:?}");
    }
}
