//! The packet generator's kernel fast path: one template frame replayed by the kernel through an
//! XDP program with `BPF_PROG_RUN` in live-frames mode, each run patching the fields that vary
//! and transmitting with `XDP_TX` (see `bpf/gen.c`); and a sink program that counts and drops
//! what arrives. No copy to or from user space per packet: on this machine it offers several
//! times what AF_PACKET generators (trafgen) manage per core. Also the receive side of
//! sluice-pktgen: a program handing its measurement frames to an AF_XDP socket
//! ([`Generator::attach_rx`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::Ebpf;
use aya::maps::{Array, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};

/// The compiled programs.
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gen.o"));

/// What the generator varies per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// UDP: the source port walks `flows` values (the template must be IPv4/UDP).
    Udp {
        /// How many flows.
        flows: u32,
        /// The first source port.
        port_base: u16,
    },
    /// Every frame a new TCP SYN 5-tuple (the template must be an IPv4 TCP SYN): source
    /// ports `port_base..port_base + ports`, then source addresses whose low 16 bits are
    /// `ip_lo..ip_lo + ips` (the template's high half kept); with `ips` or `ports` 0, the low 16
    /// bits and the port follow one 32-bit sequence instead.
    Syn {
        /// The first source port.
        port_base: u16,
        /// How many source ports.
        ports: u32,
        /// The low 16 bits of the first source address.
        ip_lo: u16,
        /// How many source addresses.
        ips: u16,
    },
}

/// `struct gen_cfg` of `gen.c` (u32 mode, u32 flows, u16 port_base, u16 sink_port, u16 ips,
/// u16 ip_lo), as the bytes of the map's value in this machine's byte order.
fn gen_cfg(mode: u32, flows: u32, port_base: u16, sink_port: u16, (ips, ip_lo): (u16, u16)) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[0..4].copy_from_slice(&mode.to_ne_bytes());
    v[4..8].copy_from_slice(&flows.to_ne_bytes());
    v[8..10].copy_from_slice(&port_base.to_ne_bytes());
    v[10..12].copy_from_slice(&sink_port.to_ne_bytes());
    v[12..14].copy_from_slice(&ips.to_ne_bytes());
    v[14..16].copy_from_slice(&ip_lo.to_ne_bytes());
    v
}

/// The loaded generator and sink.
pub struct Generator {
    ebpf: Ebpf,
    cfg: Array<MapData, [u8; 16]>,
    counts: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Generator {
    /// Loads both programs (root, or CAP_BPF + CAP_NET_ADMIN).
    pub fn load() -> io::Result<Generator> {
        let mut ebpf = Ebpf::load(PROGRAM).map_err(err)?;
        for name in ["sluice_gen", "sluice_sink", "sluice_pktgen_rx"] {
            let p: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| err(format!("{name} missing")))?
                .try_into()
                .map_err(err)?;
            p.load().map_err(err)?;
        }
        let cfg = Array::try_from(ebpf.take_map("cfg").ok_or_else(|| err("cfg missing"))?).map_err(err)?;
        let counts = PerCpuArray::try_from(ebpf.take_map("counts").ok_or_else(|| err("counts missing"))?)
            .map_err(err)?;
        Ok(Generator { ebpf, cfg, counts })
    }

    /// Sets what varies per packet and which destination port the sink counts.
    pub fn configure(&mut self, mode: Mode, sink_port: u16) -> io::Result<()> {
        let cfg = match mode {
            Mode::Udp { flows, port_base } => gen_cfg(0, flows, port_base, sink_port, (0, 0)),
            Mode::Syn { port_base, ports, ip_lo, ips } => {
                gen_cfg(1, ports, port_base, sink_port, (ips, ip_lo))
            }
        };
        self.cfg.set(0, cfg, 0).map_err(err)
    }

    /// The template's headers, which the UDP mode writes back over each frame before patching
    /// it (a DUT that rewrote a frame in place and returned it with `XDP_TX` hands the page pool
    /// its rewrite): the first 42 bytes of `frame` (Ethernet, IPv4 without options, UDP). A
    /// shorter frame sets nothing.
    pub fn set_template(&mut self, frame: &[u8]) -> io::Result<()> {
        const HDR: usize = 42;
        let Some(hdr) = frame.get(..HDR) else { return Ok(()) };
        let mut v = [0u8; 4 + HDR + 2];
        v[0..4].copy_from_slice(&(HDR as u32).to_ne_bytes());
        v[4..4 + HDR].copy_from_slice(hdr);
        let map = self.ebpf.map_mut("tmpl").ok_or_else(|| err("tmpl missing"))?;
        let mut tmpl: Array<&mut MapData, [u8; 4 + HDR + 2]> = Array::try_from(map).map_err(err)?;
        tmpl.set(0, v, 0).map_err(err)
    }

    /// Attaches the sink to `iface` (native XDP; it also gives a veth the NAPI a transmitting
    /// peer needs). Detached when the generator drops.
    pub fn attach_sink(&mut self, iface: &str) -> io::Result<()> {
        self.attach("sluice_sink", iface)
    }

    /// Attaches the receive program to `iface` (native XDP) and registers `socket` (an AF_XDP
    /// socket bound to queue `queue` of it) for the measurement frames that arrive there.
    /// Detached when the generator drops.
    pub fn attach_rx(&mut self, iface: &str, queue: u32, socket: &impl AsRawFd) -> io::Result<()> {
        let map = self.ebpf.map_mut("pg_xsks").ok_or_else(|| err("pg_xsks missing"))?;
        let mut xsks = XskMap::try_from(map).map_err(err)?;
        xsks.set(queue, socket.as_raw_fd(), 0).map_err(err)?;
        self.attach("sluice_pktgen_rx", iface)
    }

    /// Attaches program `name` to `iface` in native mode, until the generator drops.
    fn attach(&mut self, name: &str, iface: &str) -> io::Result<()> {
        let missing = || err(format!("program {name} missing"));
        let p: &mut Xdp = self.ebpf.program_mut(name).ok_or_else(missing)?.try_into().map_err(err)?;
        p.attach(iface, XdpMode::Driver).map_err(err)?;
        Ok(())
    }

    /// Transmits `count` copies of `frame`, patched per packet, out of interface `ifindex` on the
    /// calling thread's CPU; returns when the kernel has sent them.
    pub fn run(&self, ifindex: u32, frame: &[u8], count: u32) -> io::Result<()> {
        let p: &Xdp =
            self.ebpf.program("sluice_gen").ok_or_else(|| err("gen missing"))?.try_into().map_err(err)?;
        let fd = p.fd().map_err(err)?.as_fd().as_raw_fd();
        sluice_sys::xdp_live_frames(fd, frame, ifindex, count, 64).map_err(io::Error::from_raw_os_error)
    }

    fn count(&self, i: u32) -> u64 {
        self.counts.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0)
    }

    /// Frames generated so far (all CPUs).
    pub fn generated(&self) -> u64 {
        self.count(0)
    }

    /// Frames the sink counted and dropped.
    pub fn sunk(&self) -> u64 {
        self.count(1)
    }
}
