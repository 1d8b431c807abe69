//! The XDP steering program: loading it, attaching it to an interface, registering the queue
//! sockets, and keeping its map of service traffic in step with the table. See `bpf/steer.c` for
//! what the keys mean.
//!
//! Two ways to attach. [`Steering::attach_with`] uses a bpf_link: the program disappears with
//! the process, even on SIGKILL (tests and tools). [`Steering::attach_kept`] — the gateway's —
//! uses netlink, so the program outlives the process: with its queues *held*
//! ([`Steering::hold`]) it drops the service frames no socket takes while one gateway stops and
//! the next starts, instead of passing them to a kernel that would answer them with RSTs; the
//! next gateway replaces it atomically (`XDP_FLAGS_REPLACE`) once its own program is ready, and
//! [`Steering::release`] takes it off for good.
//!
//! Two builds of the one program: without the fast path for established flows (nothing of it
//! is loaded), and with it ([`FastPath::On`]: the `fast_flows` map of
//! [`crate::fastpath`] entries, and `fast_tx`, the two-armed egress ports).

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use aya::Ebpf;
use aya::maps::{Array, DevMap, HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};

use crate::fastpath::{FastEntry, FastKey};

/// The compiled program.
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer.o"));
/// The compiled program with the fast path (`-DSLUICE_FAST_PATH`).
static PROGRAM_FAST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer_fast.o"));

/// Whether the program forwards established flows itself (see `bpf/steer.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPath {
    /// Every service frame goes to the workers; nothing of the fast path is loaded.
    #[default]
    Off,
    /// Frames of flows installed in `fast_flows` are rewritten and sent on by the program.
    On,
}

/// The fast path's maps.
struct FastMaps {
    flows: BpfHashMap<MapData, FastKey, FastEntry>,
    tx: DevMap<MapData>,
}

/// What the fast path did, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FastCounts {
    /// Frames it rewrote and sent on.
    pub forwarded: u64,
    /// Frames of an installed flow it handed to the workers (SYN, FIN, RST).
    pub handed_back: u64,
    /// Frames dropped because their egress slot in `fast_tx` was empty.
    pub no_port: u64,
}

/// What a steering key matches (`KIND_*` in `steer.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Destination address, port and protocol of a frontend (port 0 + ICMP: echo to a VIP).
    Dst = 0,
    /// An address whose ARP / neighbour solicitations the gateway answers.
    Owned = 1,
    /// A FullNAT source address (the value holds the port range).
    Snat = 2,
    /// Source address, port and protocol of a DNAT service's backend.
    Src = 3,
    /// One of the host's own addresses: a DNAT backend's reply to it may be for the host's own
    /// connection, which the program leaves to the kernel when the host has a socket for it.
    Host = 4,
}

/// A key of the steering map (`struct steer_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct SteerKey {
    /// IPv6, or IPv4-mapped IPv6.
    pub addr: [u8; 16],
    /// Port in host byte order (0 where the kind has none).
    pub port: u16,
    /// IP protocol number (0 for [`Kind::Owned`]).
    pub proto: u8,
    /// What the key matches.
    pub kind: u8,
}

/// [`SteerValue::flags`]: the FullNAT source address is one of the host's own, so the XDP
/// program leaves to the kernel the replies and ICMP errors for which the host has a socket.
pub const STEER_HOST: u32 = 1;

/// A value of the steering map (`struct steer_value`): the port range of a [`Kind::Snat`] key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct SteerValue {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
    /// [`STEER_HOST`] when the address is also one of the host's own.
    pub flags: u32,
}

/// The SYN cookie settings (`struct cookie_cfg`): the SipHash key, and this CPU's SYN budget as
/// a token bucket in nanoseconds — each SYN to a frontend spends `cost_ns`, the bucket holds
/// `burst_ns`; a SYN finding less is answered with a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SynCookies {
    /// The key's first half.
    pub k0: u64,
    /// The key's second half.
    pub k1: u64,
    /// Budget one SYN spends ([`SynCookies::OFF`]: none; [`SynCookies::ALWAYS`]: more than any).
    pub cost_ns: u64,
    /// The bucket's depth.
    pub burst_ns: u64,
    /// Once the bucket runs dry, every SYN gets a cookie until the rate has stayed within the
    /// budget this long.
    pub hold_ns: u64,
}

impl SynCookies {
    /// `cost_ns` for "never answer with a cookie".
    pub const OFF: u64 = 0;
    /// `cost_ns` for "answer every SYN with a cookie".
    pub const ALWAYS: u64 = u64::MAX;

    /// How long a flood's cookie mode outlasts the flood ([`SynCookies::hold_ns`]).
    pub const HOLD_NS: u64 = 2_000_000_000;

    /// Cookies once more than `per_second` SYNs a second (per CPU, after a burst of `burst`)
    /// arrive, for every SYN until the rate has been within the budget for [`Self::HOLD_NS`].
    pub fn budget(key: [u64; 2], per_second: u64, burst: u64) -> SynCookies {
        let cost_ns = (1_000_000_000 / per_second.max(1)).max(1);
        SynCookies {
            k0: key[0],
            k1: key[1],
            cost_ns,
            burst_ns: cost_ns * burst.max(1),
            hold_ns: Self::HOLD_NS,
        }
    }

    /// Cookies for every SYN.
    pub fn always(key: [u64; 2]) -> SynCookies {
        SynCookies { k0: key[0], k1: key[1], cost_ns: Self::ALWAYS, burst_ns: 0, hold_ns: 0 }
    }

    /// No cookies.
    pub fn off(key: [u64; 2]) -> SynCookies {
        SynCookies { k0: key[0], k1: key[1], cost_ns: Self::OFF, burst_ns: 0, hold_ns: 0 }
    }
}

// SAFETY: both are `repr(C)` plain data with no padding (16+2+1+1 and 2+2+4 bytes) and every bit pattern valid, which is what `Pod` requires for copying to and from the kernel.
unsafe impl aya::Pod for SteerKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SteerValue {}
// SAFETY: `repr(C)`, five `u64`s: no padding, every bit pattern valid.
unsafe impl aya::Pod for SynCookies {}

impl SteerKey {
    /// A key of `kind` for an address, port and protocol.
    pub fn new(kind: Kind, addr: [u8; 16], port: u16, proto: u8) -> SteerKey {
        SteerKey { addr, port, proto, kind: kind as u8 }
    }
}

/// Why the program could not be set up.
#[derive(Debug)]
pub enum Error {
    /// Loading into the kernel failed (verifier, privileges).
    Load(String),
    /// Attaching to the interface failed.
    Attach {
        /// The interface.
        iface: String,
        /// What the kernel said.
        detail: String,
    },
    /// A map operation failed.
    Map(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Load(s) if s.contains("Operation not permitted") => {
                write!(f, "loading the XDP program: {s} — it needs CAP_BPF and CAP_NET_ADMIN (run as root)")
            }
            Error::Load(s) => write!(f, "loading the XDP program: {s}"),
            Error::Attach { iface, detail } => write!(
                f,
                "attaching the XDP program to {iface}: {detail} — the interface must exist and its \
                 driver support XDP (native, or generic with --xdp-mode skb)"
            ),
            Error::Map(s) => write!(f, "XDP map: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// How to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) mode, generic if the driver has none.
    #[default]
    Auto,
    /// Native only.
    Driver,
    /// Generic (skb) only.
    Skb,
}

/// What [`Steering::attach_kept`] found on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// No XDP program was attached.
    Fresh,
    /// A previous gateway's program was, and this one replaced it.
    Replaced {
        /// The replaced program's id.
        prog_id: u32,
    },
}

/// The program of id `id`, if it is a gateway's steering program; an error naming it if it is
/// something else.
fn previous_program(id: u32) -> Result<aya::programs::ProgramFd, String> {
    let info = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .ok_or_else(|| format!("XDP program {id} is attached but cannot be read"))?;
    match info.name_as_str() {
        Some("sluice_steer") => info.fd().map_err(|e| format!("XDP program {id}: {}", source_chain(&e))),
        name => Err(format!(
            "another XDP program ({}, id {id}) is attached; Sluice replaces only its own (`ip link set dev IFACE xdp off` removes it)",
            name.unwrap_or("unnamed")
        )),
    }
}

/// The program attached to one interface. Dropping it detaches the program if it was attached
/// through a bpf_link ([`Steering::attach_with`]), not if through netlink
/// ([`Steering::attach_kept`]).
pub struct Steering {
    ebpf: Ebpf,
    xsks: XskMap<MapData>,
    map: BpfHashMap<MapData, SteerKey, SteerValue>,
    counts: PerCpuArray<MapData, u64>,
    cookies: Array<MapData, SynCookies>,
    held: Array<MapData, u32>,
    own_mac: Array<MapData, u64>,
    fast: Option<FastMaps>,
    current: HashMap<SteerKey, SteerValue>,
    native: bool,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("entries", &self.current.len())
            .field("native", &self.native)
            .field("fast_path", &self.fast.is_some())
            .finish()
    }
}

impl Steering {
    /// Loads the program without attaching it ([`Steering::test_run`] runs it).
    pub fn load() -> Result<Steering, Error> {
        Steering::load_with(FastPath::Off)
    }

    /// Loads the program, with or without the fast path, without attaching it.
    pub fn load_with(fast: FastPath) -> Result<Steering, Error> {
        // With its source chain: creating a map without privileges fails with "map error:
        // failed to create map `xsks`", and only the source says "Operation not permitted",
        // the words that earn the error its "run as root".
        let object = if fast == FastPath::On { PROGRAM_FAST } else { PROGRAM };
        let mut ebpf = Ebpf::load(object).map_err(|e| Error::Load(source_chain(&e)))?;
        Self::program(&mut ebpf)?.load().map_err(|e| Error::Load(source_chain(&e)))?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name).ok_or_else(|| Error::Map(format!("map {name} missing from the object")))
        };
        let map_err = |e: aya::maps::MapError| Error::Map(e.to_string());
        let xsks = XskMap::try_from(take(&mut ebpf, "xsks")?).map_err(map_err)?;
        let map = BpfHashMap::try_from(take(&mut ebpf, "steer")?).map_err(map_err)?;
        let counts = PerCpuArray::try_from(take(&mut ebpf, "counts")?).map_err(map_err)?;
        let cookies = Array::try_from(take(&mut ebpf, "cookie_cfg")?).map_err(map_err)?;
        let held = Array::try_from(take(&mut ebpf, "held")?).map_err(map_err)?;
        let own_mac = Array::try_from(take(&mut ebpf, "own_mac")?).map_err(map_err)?;
        let fast = match fast {
            FastPath::Off => None,
            FastPath::On => Some(FastMaps {
                flows: BpfHashMap::try_from(take(&mut ebpf, "fast_flows")?).map_err(map_err)?,
                tx: DevMap::try_from(take(&mut ebpf, "fast_tx")?).map_err(map_err)?,
            }),
        };
        Ok(Steering {
            ebpf,
            xsks,
            map,
            counts,
            cookies,
            held,
            own_mac,
            fast,
            current: HashMap::new(),
            native: false,
        })
    }

    fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, Error> {
        ebpf.program_mut("sluice_steer")
            .ok_or_else(|| Error::Load("program sluice_steer missing from the object".into()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| Error::Load(source_chain(&e)))
    }

    /// Loads the program (without the fast path) and attaches it to `iface`.
    pub fn attach(iface: &str, mode: AttachMode) -> Result<Steering, Error> {
        Steering::attach_with(iface, mode, FastPath::Off)
    }

    /// Loads the program, with or without the fast path, and attaches it to `iface`.
    pub fn attach_with(iface: &str, mode: AttachMode, fast: FastPath) -> Result<Steering, Error> {
        let mut s = Steering::load_with(fast)?;
        let prog = Self::program(&mut s.ebpf)?;
        let attach = |prog: &mut Xdp, m| {
            prog.attach(iface, m).map_err(|e| Error::Attach { iface: iface.into(), detail: source_chain(&e) })
        };
        let native = match mode {
            AttachMode::Driver => attach(prog, XdpMode::Driver).map(|_| true)?,
            AttachMode::Skb => attach(prog, XdpMode::Skb).map(|_| false)?,
            AttachMode::Auto => match attach(prog, XdpMode::Driver) {
                Ok(_) => true,
                Err(Error::Attach { detail, .. }) if detail.contains("No such device") => {
                    return Err(Error::Attach { iface: iface.into(), detail });
                }
                Err(_) => attach(prog, XdpMode::Skb).map(|_| false)?,
            },
        };
        s.native = native;
        Ok(s)
    }

    /// Attaches the loaded program to `iface` through netlink, so that it stays attached when
    /// this process ends. A program a previous gateway left there (ours: `sluice_steer`) is
    /// replaced atomically, in the mode it runs in — a frame meets one program or the other,
    /// never none; any other XDP program there is left alone and refused with its name.
    pub fn attach_kept(&mut self, iface: &str, mode: AttachMode) -> Result<Takeover, Error> {
        use std::os::fd::AsFd as _;
        let attach_err = |detail: String| Error::Attach { iface: iface.into(), detail };
        let ifindex = crate::socket::if_index(iface).map_err(|e| attach_err(e.to_string()))?;
        let mut nl = crate::netlink::Netlink::open().map_err(|e| attach_err(format!("netlink: {e}")))?;
        let old = nl.xdp_program(ifindex).map_err(|e| attach_err(format!("reading its XDP program: {e}")))?;
        let previous = match old {
            None => None,
            Some(a) => Some((previous_program(a.prog_id).map_err(attach_err)?, a)),
        };
        let prog = Self::program(&mut self.ebpf)?;
        let fd = prog.fd().map_err(|e| Error::Load(source_chain(&e)))?.as_fd().as_raw_fd();
        let expected = previous.as_ref().map(|(p, _)| p.as_fd().as_raw_fd());
        use crate::netlink::{XDP_FLAGS_DRV_MODE as DRV, XDP_FLAGS_SKB_MODE as SKB};
        let tries: &[u32] = match (mode, previous.as_ref().map(|(_, a)| a.mode)) {
            (AttachMode::Driver, _) => &[DRV],
            (AttachMode::Skb, _) => &[SKB],
            // Where the previous program runs: the kernel replaces only within one mode.
            (AttachMode::Auto, Some(2)) => &[SKB],
            (AttachMode::Auto, Some(_)) => &[DRV],
            (AttachMode::Auto, None) => &[DRV, SKB],
        };
        let mut last = None;
        for &flags in tries {
            match nl.set_xdp(ifindex, fd, flags, expected) {
                Ok(()) => {
                    self.native = flags == DRV;
                    return Ok(match previous {
                        Some((_, a)) => Takeover::Replaced { prog_id: a.prog_id },
                        None => Takeover::Fresh,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Err(attach_err(e.to_string())),
                Err(e) => last = Some(e),
            }
        }
        let e = last.map_or_else(|| "no mode to try".to_owned(), |e| e.to_string());
        Err(attach_err(if previous.is_some() {
            format!("replacing the previous gateway's program: {e}")
        } else {
            e
        }))
    }

    /// Holds `queue`: from now on, frames steered to it that find no socket are dropped (and
    /// counted) rather than passed to the kernel — between this gateway and the next.
    pub fn hold(&mut self, queue: u32) -> Result<(), Error> {
        self.held.set(queue, 1, 0).map_err(|e| Error::Map(format!("held[{queue}]: {e}")))
    }

    /// Takes the steering program a gateway left on `iface` off it (the interface's traffic is
    /// the kernel's again). `Ok(false)` when none was there; any other XDP program is left alone.
    pub fn release(iface: &str) -> Result<bool, Error> {
        use std::os::fd::AsFd as _;
        let attach_err = |detail: String| Error::Attach { iface: iface.into(), detail };
        let ifindex = crate::socket::if_index(iface).map_err(|e| attach_err(e.to_string()))?;
        let mut nl = crate::netlink::Netlink::open().map_err(|e| attach_err(format!("netlink: {e}")))?;
        let Some(a) = nl.xdp_program(ifindex).map_err(|e| attach_err(e.to_string()))? else {
            return Ok(false);
        };
        let prog = previous_program(a.prog_id).map_err(attach_err)?;
        let flags =
            if a.mode == 2 { crate::netlink::XDP_FLAGS_SKB_MODE } else { crate::netlink::XDP_FLAGS_DRV_MODE };
        nl.set_xdp(ifindex, -1, flags, Some(prog.as_fd().as_raw_fd()))
            .map_err(|e| attach_err(format!("detaching: {e}")))?;
        Ok(true)
    }

    /// Sets the SYN cookie key and budget (until called, no SYN is answered with a cookie).
    pub fn set_syn_cookies(&mut self, c: &SynCookies) -> Result<(), Error> {
        self.cookies.set(0, c, 0).map_err(|e| Error::Map(format!("cookie_cfg: {e}")))
    }

    /// The interface's MAC address: unicast frames to another are passed to the kernel (which
    /// drops them as not the host's), never steered or forwarded. Unset, every frame is looked
    /// at, whatever its destination MAC.
    pub fn set_own_mac(&mut self, mac: [u8; 6]) -> Result<(), Error> {
        let v = 1u64 << 63 | mac.iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
        self.own_mac.set(0, v, 0).map_err(|e| Error::Map(format!("own_mac: {e}")))
    }

    /// Runs the program once over `frame` (`BPF_PROG_TEST_RUN`, nothing attached or sent):
    /// its verdict (`XDP_*`) and the frame as it left it.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>), Error> {
        use std::os::fd::AsFd as _;
        let prog = Self::program(&mut self.ebpf)?;
        let fd = prog.fd().map_err(|e| Error::Load(source_chain(&e)))?;
        let raw = fd.as_fd().as_raw_fd();
        sluice_sys::xdp_test_run(raw, frame).map_err(|errno| Error::Load(format!("test run: errno {errno}")))
    }

    /// Whether the program runs in the driver (native XDP) rather than generic mode.
    pub fn native(&self) -> bool {
        self.native
    }

    /// Sends frames the program redirects on queue `queue` to `socket`.
    pub fn register(&mut self, queue: u32, socket: &impl AsRawFd) -> Result<(), Error> {
        self.xsks.set(queue, socket.as_raw_fd(), 0).map_err(|e| Error::Map(format!("xsks[{queue}]: {e}")))
    }

    /// Makes the map hold exactly `wanted`: removes what is gone first (so traffic of a
    /// removed service goes back to the kernel), then adds and updates. Returns (added or
    /// changed, removed).
    pub fn sync(&mut self, wanted: &HashMap<SteerKey, SteerValue>) -> Result<(usize, usize), Error> {
        let gone: Vec<SteerKey> = self.current.keys().filter(|k| !wanted.contains_key(k)).copied().collect();
        for k in &gone {
            match self.map.remove(k) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(Error::Map(format!("remove: {e}"))),
            }
            self.current.remove(k);
        }
        let mut changed = 0;
        for (k, v) in wanted {
            if self.current.get(k) == Some(v) {
                continue;
            }
            self.map.insert(k, v, 0).map_err(|e| Error::Map(format!("insert: {e}")))?;
            self.current.insert(*k, *v);
            changed += 1;
        }
        Ok((changed, gone.len()))
    }

    /// Frames the program has redirected and passed, and SYNs it answered with a cookie, summed
    /// over CPUs.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.count(0), self.count(1), self.count(2))
    }

    fn count(&self, i: u32) -> u64 {
        self.counts.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0)
    }

    /// Whether the fast path is loaded.
    pub fn fast_path(&self) -> bool {
        self.fast.is_some()
    }

    fn fast_maps(&mut self) -> Result<&mut FastMaps, Error> {
        self.fast.as_mut().ok_or_else(|| Error::Map("the fast path is not loaded".into()))
    }

    /// What the fast path did (zeros when it is not loaded).
    pub fn fast_counts(&self) -> FastCounts {
        FastCounts { forwarded: self.count(3), handed_back: self.count(4), no_port: self.count(5) }
    }

    /// Installs (or replaces) the entry of one flow direction. Fails when the map is full
    /// (`FAST_MAX_ENTRIES` in `steer.c`): the flow then stays on the AF_XDP path.
    pub fn fast_install(&mut self, key: &FastKey, entry: &FastEntry) -> Result<(), Error> {
        let m = self.fast_maps()?;
        m.flows.insert(key, entry, 0).map_err(|e| Error::Map(format!("fast_flows insert: {e}")))
    }

    /// Removes the entry of one flow direction; false when there was none.
    pub fn fast_remove(&mut self, key: &FastKey) -> Result<bool, Error> {
        match self.fast_maps()?.flows.remove(key) {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(false)
            }
            Err(e) => Err(Error::Map(format!("fast_flows remove: {e}"))),
        }
    }

    /// Removes every entry; returns how many there were.
    pub fn fast_clear(&mut self) -> Result<usize, Error> {
        let m = self.fast_maps()?;
        let keys: Vec<FastKey> = m.flows.keys().filter_map(Result::ok).collect();
        for k in &keys {
            match m.flows.remove(k) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::Map(format!("fast_flows remove: {e}"))),
            }
        }
        Ok(keys.len())
    }

    /// The entry of one flow direction, with the program's counters, if installed.
    pub fn fast_entry(&self, key: &FastKey) -> Result<Option<FastEntry>, Error> {
        let Some(m) = &self.fast else { return Err(Error::Map("the fast path is not loaded".into())) };
        match m.flows.get(key, 0) {
            Ok(e) => Ok(Some(e)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(Error::Map(format!("fast_flows lookup: {e}"))),
        }
    }

    /// Makes `fast_tx[port]` the interface `ifindex` (two-armed egress).
    pub fn set_fast_port(&mut self, port: u32, ifindex: u32) -> Result<(), Error> {
        let m = self.fast_maps()?;
        m.tx.set(port, ifindex, None, 0).map_err(|e| Error::Map(format!("fast_tx[{port}]: {e}")))
    }
}

/// The names of the maps the loaded program `prog_id` uses (the id `ip link` shows for an
/// interface's XDP program): how a test tells which build of the steering program runs, and
/// that nothing of the fast path is loaded when it is off.
pub fn program_maps(prog_id: u32) -> Result<Vec<String>, Error> {
    for p in aya::programs::loaded_programs() {
        let p = p.map_err(|e| Error::Load(source_chain(&e)))?;
        if p.id() != prog_id {
            continue;
        }
        let ids = p.map_ids().map_err(|e| Error::Load(source_chain(&e)))?.unwrap_or_default();
        return ids
            .into_iter()
            .map(|id| {
                aya::maps::MapInfo::from_id(id)
                    .map(|m| m.name_as_str().unwrap_or_default().to_owned())
                    .map_err(|e| Error::Map(format!("map {id}: {e}")))
            })
            .collect();
    }
    Err(Error::Load(format!("no loaded program has the id {prog_id}")))
}

/// An error and its sources, `: `-separated; a source whose text its error already ends with
/// (aya's `map error: {0}` wraps and is sourced by the same error) is said once.
pub(crate) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
