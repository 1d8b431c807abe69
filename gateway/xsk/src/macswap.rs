//! The MAC-swap `XDP_TX` loop (`bpf/macswap.c`): the ceiling of any XDP forwarder on an
//! interface, which `benches/run l4` measures beside Sluice's fast path. Not used by the
//! gateway. No unsafe: aya loads and attaches it.

use aya::Ebpf;
use aya::programs::{Xdp, XdpMode};

use crate::steer::{Error, source_chain};

/// The compiled program.
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/macswap.o"));

/// The program attached to one interface in native (driver) mode; dropping it detaches it.
pub struct MacSwap {
    _ebpf: Ebpf,
}

impl std::fmt::Debug for MacSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacSwap").finish_non_exhaustive()
    }
}

impl MacSwap {
    /// Loads the program and attaches it to `iface` in driver mode (generic mode would measure
    /// the kernel's skb path, not XDP).
    pub fn attach(iface: &str) -> Result<MacSwap, Error> {
        let mut ebpf = Ebpf::load(PROGRAM).map_err(|e| Error::Load(source_chain(&e)))?;
        let prog: &mut Xdp = ebpf
            .program_mut("sluice_macswap")
            .ok_or_else(|| Error::Load("program sluice_macswap missing from the object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| Error::Load(source_chain(&e)))?;
        prog.load().map_err(|e| Error::Load(source_chain(&e)))?;
        prog.attach(iface, XdpMode::Driver)
            .map_err(|e| Error::Attach { iface: iface.into(), detail: source_chain(&e) })?;
        Ok(MacSwap { _ebpf: ebpf })
    }
}
