//! TCP headers (RFC 9293).

use crate::checksum;
use crate::{Error, Result, read_u16, read_u32, write_u16, write_u32};

mod field {
    use crate::Field;
    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const SEQ: Field = 4..8;
    pub(super) const ACK: Field = 8..12;
    pub(super) const OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: Field = 14..16;
    pub(super) const CHECKSUM: Field = 16..18;
    pub(super) const URGENT: Field = 18..20;
}

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// TCP flag bits (the low byte of the flags field).
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// TCP option kinds Sluice reads.
pub mod option {
    /// End of the option list.
    pub const END: u8 = 0;
    /// No-operation (padding).
    pub const NOP: u8 = 1;
    /// Window scale (RFC 7323), length 3.
    pub const WINDOW_SCALE: u8 = 3;
    /// Timestamps (RFC 7323), length 10.
    pub const TIMESTAMPS: u8 = 8;
}

/// The options of a segment Sluice tracks connections by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Window scale shift (clamped to 14, as RFC 7323 §2.3 says), if present.
    pub window_scale: Option<u8>,
    /// The timestamp value (TSval), if present.
    pub tsval: Option<u32>,
}

/// Reads the window scale and timestamp options from an option list (the bytes after the fixed
/// header). Malformed lists end the walk: what was read before is kept, the rest ignored, as a
/// receiver would. The common layout (NOP, NOP, timestamps) is read without a walk.
pub fn parse_options(opts: &[u8]) -> Options {
    let mut o = Options::default();
    if opts.len() == 12 && opts[..4] == [option::NOP, option::NOP, option::TIMESTAMPS, 10] {
        o.tsval = Some(read_u32(opts, 4));
        return o;
    }
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            option::END => break,
            option::NOP => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    break;
                }
                match (kind, len) {
                    (option::WINDOW_SCALE, 3) => o.window_scale = Some(opts[i + 2].min(14)),
                    (option::TIMESTAMPS, 10) => o.tsval = Some(read_u32(opts, i + 2)),
                    _ => {}
                }
                i += len;
            }
        }
    }
    o
}

/// A view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer (the whole segment), checking the data offset against its length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(b[field::OFF] >> 4) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(Error::BadHeaderLen);
        }
        Ok(Packet { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ.start)
    }

    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK.start)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFF] >> 4) * 4
    }

    /// Flag bits (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Window.
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW.start)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Options bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum verifies with the given pseudo-header sum.
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        checksum::finish(checksum::accumulate(pseudo_header, self.buffer.as_ref())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port (checksum not touched).
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port (checksum not touched).
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ.start, v);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK.start, v);
    }

    /// Sets the header length in bytes and the flags.
    pub fn set_header_len_and_flags(&mut self, len: usize, f: u8) {
        let b = self.buffer.as_mut();
        b[field::OFF] = ((len / 4) as u8) << 4;
        b[field::FLAGS] = f;
    }

    /// Sets the window.
    pub fn set_window(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW.start, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Recomputes the checksum over the whole segment with the given pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::accumulate(pseudo_header, self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

/// A TCP header without options, to write with [`Packet::emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with [`flags::ACK`]).
    pub ack: u32,
    /// [`flags`].
    pub flags: u8,
    /// Window.
    pub window: u16,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a 20-byte header saying `r`, checksum and urgent pointer 0 (fill the checksum
    /// once the payload is in place: [`Packet::fill_checksum`]).
    pub fn emit(&mut self, r: &Repr) {
        self.set_src_port(r.src_port);
        self.set_dst_port(r.dst_port);
        self.set_seq(r.seq);
        self.set_ack(r.ack);
        self.set_header_len_and_flags(MIN_HEADER_LEN, r.flags);
        self.set_window(r.window);
        self.set_checksum(0);
        write_u16(self.buffer.as_mut(), field::URGENT.start, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SYN 198.18.0.2:40000 → 198.18.0.1:80, seq 1, window 64240, checksum 0x8c38.
    const SYN: [u8; 20] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x8c,
        0x38, 0x00, 0x00,
    ];
    const SRC: [u8; 4] = [198, 18, 0, 2];
    const DST: [u8; 4] = [198, 18, 0, 1];

    #[test]
    fn parse_syn() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq(), 1);
        assert_eq!(p.ack(), 0);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x8c38);
        assert_eq!(p.urgent(), 0);
        assert!(p.options().is_empty() && p.payload().is_empty());
        assert!(p.verify_checksum(checksum::pseudo_header_v4(SRC, DST, 6, 20)));
    }

    #[test]
    fn emit_round_trip() {
        let mut buf = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(40000);
        p.set_dst_port(80);
        p.set_seq(1);
        p.set_ack(0);
        p.set_header_len_and_flags(20, flags::SYN);
        p.set_window(64240);
        p.fill_checksum(checksum::pseudo_header_v4(SRC, DST, 6, 20));
        assert_eq!(buf, SYN);
    }

    #[test]
    fn options_of_a_linux_syn_and_of_hostile_lists() {
        // Linux's SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
        let syn = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7];
        let o = parse_options(&syn);
        assert_eq!((o.window_scale, o.tsval), (Some(7), Some(0x1234)));
        // The data segments' NOP NOP timestamps.
        let data = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 1];
        assert_eq!(parse_options(&data).tsval, Some(9));
        assert_eq!(parse_options(&[3, 3, 40]).window_scale, Some(14), "shift clamped");
        for hostile in [&[3u8][..], &[3, 0, 1], &[3, 9, 1], &[8, 10, 1, 2], &[1, 1, 1], &[]] {
            let o = parse_options(hostile);
            assert_eq!(o, Options::default(), "{hostile:?}");
        }
    }

    #[test]
    fn refuse_bad_offsets() {
        assert_eq!(Packet::new_checked(&SYN[..19]).unwrap_err(), Error::Truncated);
        let mut small = SYN;
        small[12] = 0x40;
        assert_eq!(Packet::new_checked(&small[..]).unwrap_err(), Error::BadHeaderLen);
        let mut big = SYN;
        big[12] = 0x60; // 24-byte header in a 20-byte segment
        assert_eq!(Packet::new_checked(&big[..]).unwrap_err(), Error::BadHeaderLen);
    }
}
