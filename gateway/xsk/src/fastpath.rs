//! The fast path's map layout, mirrored from `bpf/fastpath.h` (the one definition): the key
//! ([`FastKey`], a flow direction's 5-tuple as it arrives) and the entry ([`FastEntry`], the
//! whole rewrite of that direction, and the counters the program keeps). A test reads both
//! structs back from the compiled program's BTF and compares sizes and every member's offset.
//!
//! What goes into an entry is decided elsewhere (the worker builds it from a flow record and
//! the L4 engine's precomputed rewrite); this module only owns the bytes the kernel sees.
//! Not hot path. No unsafe beyond the `Pod` declarations aya needs to copy the types.

/// [`FastEntry::flags`]: leave through the interface the frame arrived on (`XDP_TX`); without
/// it, the frame is redirected to the `fast_tx` slot [`FastEntry::tx_port`].
pub const FAST_TX: u32 = 1;

/// [`FastEntry::flags`], set by the program: a FIN or RST of this direction was handed back,
/// and so is every frame after it; the entry stays, with its counters, until user space reads
/// and removes it.
pub const FAST_CLOSING: u32 = 2;

/// `struct fast_key`: a 5-tuple as the packet carries it. The layout of
/// `sluice_lb::flow::FlowKey` (addresses IPv4-mapped, ports in host byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct FastKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port, host byte order.
    pub sport: u16,
    /// Destination port, host byte order.
    pub dport: u16,
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    /// Zero (hashed with the key).
    pub pad: [u8; 3],
}

impl FastKey {
    /// A key.
    pub fn new(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, proto: u8) -> FastKey {
        FastKey { src, dst, sport, dport, proto, pad: [0; 3] }
    }
}

/// `struct fast_entry`: one direction's rewrite, and the program's counters for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct FastEntry {
    /// New source address (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// New destination address.
    pub dst: [u8; 16],
    /// New source port, network byte order (as written into the frame).
    pub sport_be: u16,
    /// New destination port, network byte order.
    pub dport_be: u16,
    /// RFC 1624 delta of the IPv4 header checksum (addresses and the TTL decrement), folded
    /// to 16 bits, in memory order (`to_be()` of the value): the program adds it to the field
    /// as loaded.
    pub ip_delta_be: u16,
    /// The same for the TCP/UDP checksum (addresses through the pseudo-header, and ports).
    pub l4_delta_be: u16,
    /// Destination MAC address (the next hop).
    pub dmac: [u8; 6],
    /// Source MAC address (the egress interface's).
    pub smac: [u8; 6],
    /// [`FAST_TX`] or 0.
    pub flags: u32,
    /// The `fast_tx` slot to redirect to when not [`FAST_TX`].
    pub tx_port: u32,
    /// Zero.
    pub pad: u32,
    /// Frames the program forwarded (it adds atomically; install with 0).
    pub packets: u64,
    /// Their bytes, whole frames.
    pub bytes: u64,
    /// CLOCK_MONOTONIC of the last one as of the last tick (`bpf_ktime_get_coarse_ns`), 0 before any.
    pub last_seen_ns: u64,
}

// SAFETY: `repr(C)`, byte arrays and integers laid out with no padding (16+16+2+2+1+3 = 40,
// alignment 2; and 88 bytes whose `u64`s sit at multiples of 8, which the layout test checks),
// and every bit pattern is a valid value: what `Pod` requires to copy them to and from the kernel.
unsafe impl aya::Pod for FastKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FastEntry {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::mem::{offset_of, size_of};

    /// The program with the fast path, as built (`build.rs`).
    static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer_fast.o"));

    /// A struct as BTF describes it: size, and (member, byte offset) in order.
    type Layout = (u32, Vec<(String, u32)>);

    /// The `.BTF` section of an ELF64 little-endian object.
    fn btf_section(elf: &[u8]) -> &[u8] {
        let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
        assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "an ELF64 little-endian object");
        let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
        let section = |i: usize| {
            let h = shoff + i * shentsize;
            (u32_at(h), u64_at(h + 0x18), u64_at(h + 0x20)) // name, offset, size
        };
        let (_, stroff, _) = section(shstrndx);
        for i in 0..shnum {
            let (name, off, size) = section(i);
            let n = &elf[stroff + name..];
            if n.starts_with(b".BTF\0") {
                return &elf[off..off + size];
            }
        }
        panic!("no .BTF section: the program is built with -g");
    }

    /// Every struct of a BTF blob, by name (the kernel's `Documentation/bpf/btf.rst`).
    fn btf_structs(btf: &[u8]) -> HashMap<String, Layout> {
        let u32_at = |o: usize| u32::from_le_bytes(btf[o..o + 4].try_into().unwrap());
        assert_eq!(&btf[..2], &0xeb9f_u16.to_le_bytes(), "BTF magic");
        let hdr_len = u32_at(4) as usize;
        let (type_off, type_len, str_off) = (u32_at(8) as usize, u32_at(12) as usize, u32_at(16) as usize);
        let types = hdr_len + type_off;
        let strings = hdr_len + str_off;
        let name = |off: u32| {
            let s = &btf[strings + off as usize..];
            String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap()]).into_owned()
        };
        let mut out = HashMap::new();
        let mut o = types;
        while o < types + type_len {
            let (name_off, info, size) = (u32_at(o), u32_at(o + 4), u32_at(o + 8));
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            o += 12;
            // The bytes that follow each kind's common header.
            let extra = match kind {
                1 | 14 | 17 => 4,   // INT, VAR, DECL_TAG
                3 => 12,            // ARRAY
                4 | 5 => 12 * vlen, // STRUCT, UNION
                6 => 8 * vlen,      // ENUM
                13 => 8 * vlen,     // FUNC_PROTO
                15 => 12 * vlen,    // DATASEC
                19 => 12 * vlen,    // ENUM64
                _ => 0,             // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
            };
            if kind == 4 {
                let kind_flag = info >> 31 != 0;
                let members = (0..vlen)
                    .map(|i| {
                        let m = o + 12 * i;
                        let bits = u32_at(m + 8);
                        let bits = if kind_flag { bits & 0x00ff_ffff } else { bits };
                        assert_eq!(bits % 8, 0, "no bit fields in the fast path's structs");
                        (name(u32_at(m)), bits / 8)
                    })
                    .collect();
                out.insert(name(name_off), (size, members));
            }
            o += extra;
        }
        out
    }

    fn compiled(name: &str) -> Layout {
        btf_structs(btf_section(OBJECT))
            .remove(name)
            .unwrap_or_else(|| panic!("struct {name} not in the BTF"))
    }

    #[test]
    fn the_key_is_laid_out_as_the_program_reads_it() {
        let want = (
            size_of::<FastKey>() as u32,
            vec![
                ("src".into(), offset_of!(FastKey, src) as u32),
                ("dst".into(), offset_of!(FastKey, dst) as u32),
                ("sport".into(), offset_of!(FastKey, sport) as u32),
                ("dport".into(), offset_of!(FastKey, dport) as u32),
                ("proto".into(), offset_of!(FastKey, proto) as u32),
                ("pad".into(), offset_of!(FastKey, pad) as u32),
            ],
        );
        assert_eq!(compiled("fast_key"), want);
        assert_eq!(size_of::<FastKey>(), 40, "the size of sluice_lb::flow::FlowKey");
    }

    #[test]
    fn the_entry_is_laid_out_as_the_program_reads_it() {
        // The C names, beside the Rust ones (which say the byte order where it matters).
        let want = (
            size_of::<FastEntry>() as u32,
            vec![
                ("src".into(), offset_of!(FastEntry, src) as u32),
                ("dst".into(), offset_of!(FastEntry, dst) as u32),
                ("sport".into(), offset_of!(FastEntry, sport_be) as u32),
                ("dport".into(), offset_of!(FastEntry, dport_be) as u32),
                ("ip_delta".into(), offset_of!(FastEntry, ip_delta_be) as u32),
                ("l4_delta".into(), offset_of!(FastEntry, l4_delta_be) as u32),
                ("dmac".into(), offset_of!(FastEntry, dmac) as u32),
                ("smac".into(), offset_of!(FastEntry, smac) as u32),
                ("flags".into(), offset_of!(FastEntry, flags) as u32),
                ("tx_port".into(), offset_of!(FastEntry, tx_port) as u32),
                ("pad".into(), offset_of!(FastEntry, pad) as u32),
                ("packets".into(), offset_of!(FastEntry, packets) as u32),
                ("bytes".into(), offset_of!(FastEntry, bytes) as u32),
                ("last_seen_ns".into(), offset_of!(FastEntry, last_seen_ns) as u32),
            ],
        );
        assert_eq!(compiled("fast_entry"), want);
        // No hidden padding (what `Pod` promises): the members tile the struct.
        assert_eq!(size_of::<FastEntry>(), 88);
    }
}
