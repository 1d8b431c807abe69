//! A fixed-capacity byte queue, one per direction and side of a proxied connection.
//!
//! Its capacity is fixed with the connection and never grows; its storage is taken when bytes
//! first need it and given back when the queue is empty and [`Buf::shed`] is called — what a
//! connection does when it goes idle between requests, so that an idle keep-alive connection
//! holds no buffer at all. Storage given back waits in a free list of the thread's (each worker
//! thread owns its connections; nothing is shared), bounded by [`crate::storage::FREE_PER_SIZE`], so that a busy
//! connection taking and shedding storage request after request allocates nothing once the
//! list has some. Bytes are appended at `end` and consumed
//! from `start`; the live bytes are moved to the front when room is needed at the back. For
//! the upstream output a prefix of sent bytes can be *kept* (from [`Buf::keep_from_start`])
//! so that a request can be written again to another upstream connection; the kept bytes
//! are given up when room is needed and there is no other way to get it.

use std::fmt;

use crate::storage::{give_boxed as give_storage, take_boxed as take_storage};

/// A fixed-capacity byte queue.
pub(crate) struct Buf {
    /// The storage, while the queue needs it.
    data: Option<Box<[u8]>>,
    cap: usize,
    start: usize,
    end: usize,
    /// Sent bytes still held from here (for a replay), if any.
    kept: Option<usize>,
    /// Kept bytes were given up for room since the last [`Buf::keep_from_start`].
    lost: bool,
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buf")
            .field("cap", &self.cap)
            .field("storage", &self.data.is_some())
            .field("start", &self.start)
            .field("end", &self.end)
            .field("kept", &self.kept)
            .finish()
    }
}

impl Buf {
    /// An empty queue of `cap` bytes.
    pub(crate) fn new(cap: usize) -> Buf {
        Buf { data: None, cap, start: 0, end: 0, kept: None, lost: false }
    }

    /// The capacity.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// The unconsumed bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.data.as_deref().map_or(&[], |d| &d[self.start..self.end])
    }

    /// The storage, taken now if the queue has none.
    fn storage(&mut self) -> &mut [u8] {
        let cap = self.cap;
        self.data.get_or_insert_with(|| take_storage(cap))
    }

    /// Gives the storage back if the queue is empty and keeps nothing (an idle connection's
    /// buffers); the next bytes take storage again.
    pub(crate) fn shed(&mut self) {
        if self.start == self.end
            && self.kept.is_none()
            && let Some(d) = self.data.take()
        {
            self.start = 0;
            self.end = 0;
            give_storage(d);
        }
    }

    /// Whether the queue holds storage now.
    pub(crate) fn has_storage(&self) -> bool {
        self.data.is_some()
    }

    /// How many unconsumed bytes there are.
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether nothing is left to consume.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes held, kept ones included (what the buffer costs right now).
    pub(crate) fn held(&self) -> usize {
        self.end - self.kept.unwrap_or(self.start)
    }

    /// Whether the unconsumed bytes begin at the front of the storage.
    pub(crate) fn at_front(&self) -> bool {
        self.start == 0
    }

    /// Consumes `n` bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n.min(self.len());
        if self.start == self.end && self.kept.is_none() {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything, kept bytes included.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.kept = None;
    }

    /// How many bytes could be appended (after moving the live bytes to the front, and after
    /// giving up kept bytes if `give_up_kept`).
    pub(crate) fn room(&self, give_up_kept: bool) -> usize {
        let from = if give_up_kept { self.start } else { self.kept.unwrap_or(self.start) };
        self.cap() - (self.end - from)
    }

    /// Makes `n` bytes of room at the back if possible, moving bytes to the front and, as a
    /// last resort, giving up kept bytes. Whether there is room.
    pub(crate) fn reserve(&mut self, n: usize) -> bool {
        if self.cap() - self.end >= n {
            return true;
        }
        if self.room(false) < n && self.kept.is_some() {
            self.kept = None;
            self.lost = true;
        }
        self.compact();
        self.cap() - self.end >= n
    }

    /// Moves the live (and kept) bytes to the front.
    pub(crate) fn compact(&mut self) {
        let from = self.kept.unwrap_or(self.start);
        if from == 0 {
            return;
        }
        let end = self.end;
        if let Some(d) = self.data.as_mut() {
            d.copy_within(from..end, 0);
        }
        self.end -= from;
        self.start -= from;
        if let Some(k) = &mut self.kept {
            *k = 0;
        }
    }

    /// The free space at the back, after moving bytes to the front if that makes more: for a
    /// read to fill, then [`Buf::filled`]. Kept bytes are not given up for it.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        if self.kept.unwrap_or(self.start) > 0 && self.end == self.cap() {
            self.compact();
        } else if self.start == self.end && self.kept.is_none() {
            self.start = 0;
            self.end = 0;
        }
        let end = self.end;
        &mut self.storage()[end..]
    }

    /// `n` bytes were written into [`Buf::space`].
    pub(crate) fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.cap());
        self.end = (self.end + n).min(self.cap());
    }

    /// Appends all of `bytes`, or nothing when they do not fit (false).
    pub(crate) fn push(&mut self, bytes: &[u8]) -> bool {
        if !self.reserve(bytes.len()) {
            return false;
        }
        if bytes.is_empty() {
            return true;
        }
        let end = self.end;
        self.storage()[end..end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    /// From now on, consumed bytes are kept until [`Buf::release_kept`] or until room is needed.
    pub(crate) fn keep_from_start(&mut self) {
        self.kept = Some(self.start);
        self.lost = false;
    }

    /// Stops keeping consumed bytes.
    pub(crate) fn release_kept(&mut self) {
        self.kept = None;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes the kept bytes unconsumed again (to write them anew); false if some were given up.
    pub(crate) fn rewind(&mut self) -> bool {
        match self.kept {
            Some(k) if !self.lost => {
                self.start = k;
                true
            }
            _ => false,
        }
    }

    /// Whether every byte since [`Buf::keep_from_start`] is still here.
    pub(crate) fn replayable(&self) -> bool {
        self.kept.is_some() && !self.lost
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(d) = self.data.take() {
            give_storage(d);
        }
    }
}

/// Formats into a [`Buf`]'s free space without allocating; fails when it does not fit.
pub(crate) struct Out<'a>(pub(crate) &'a mut Buf);

impl fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.0.push(s.as_bytes()) { Ok(()) } else { Err(fmt::Error) }
    }
}

/// The numbers and addresses every proxied request carries, written without `core::fmt`'s
/// machinery (a request head is a handful of them; formatting them was a visible share of the
/// worker's user time).
impl Out<'_> {
    /// `v` in decimal.
    pub(crate) fn dec(&mut self, mut v: u64) -> fmt::Result {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.raw(&digits[at..])
    }

    /// `v` as 16 lowercase hexadecimal digits.
    pub(crate) fn hex16(&mut self, v: u64) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        self.raw(&digits)
    }

    /// An address as `Display` writes it (dotted quad; IPv6 through `Display` itself).
    pub(crate) fn ip(&mut self, ip: std::net::IpAddr) -> fmt::Result {
        match ip {
            std::net::IpAddr::V4(v4) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.raw(b".")?;
                    }
                    self.dec(u64::from(o))?;
                }
                Ok(())
            }
            std::net::IpAddr::V6(v6) => fmt::Write::write_fmt(self, format_args!("{v6}")),
        }
    }

    /// Raw bytes.
    pub(crate) fn raw(&mut self, b: &[u8]) -> fmt::Result {
        if self.0.push(b) { Ok(()) } else { Err(fmt::Error) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_written_as_display_writes_them() {
        use std::net::IpAddr;
        let mut b = Buf::new(4096);
        let mut out = Out(&mut b);
        for v in [0u64, 7, 10, 80, 65_535, u64::MAX] {
            out.dec(v).unwrap();
            out.raw(b" ").unwrap();
        }
        for v in [0u64, 0xabc, u64::MAX] {
            out.hex16(v).unwrap();
            out.raw(b" ").unwrap();
        }
        let ips: [IpAddr; 4] = [
            "0.0.0.0".parse().unwrap(),
            "198.18.0.110".parse().unwrap(),
            "255.9.10.1".parse().unwrap(),
            "2001:db8::7".parse().unwrap(),
        ];
        for ip in ips {
            out.ip(ip).unwrap();
            out.raw(b" ").unwrap();
        }
        let want: String = [0u64, 7, 10, 80, 65_535, u64::MAX]
            .iter()
            .map(|v| format!("{v} "))
            .chain([0u64, 0xabc, u64::MAX].iter().map(|v| format!("{v:016x} ")))
            .chain(ips.iter().map(|ip| format!("{ip} ")))
            .collect();
        assert_eq!(std::str::from_utf8(b.bytes()).unwrap(), want);
        // Past the buffer: an error, not a partial write that says it fitted.
        let mut small = Buf::new(4);
        assert!(Out(&mut small).hex16(1).is_err());
    }

    #[test]
    fn a_queue_moves_bytes_to_the_front_for_room_and_never_grows() {
        let mut b = Buf::new(8);
        assert!(b.push(b"abcdef"));
        b.consume(4);
        assert!(b.push(b"ghij"), "room made by moving ef to the front");
        assert_eq!(b.bytes(), b"efghij");
        assert!(!b.push(b"klm"), "all or nothing");
        assert_eq!(b.cap(), 8);
    }

    #[test]
    fn kept_bytes_replay_until_room_is_needed() {
        let mut b = Buf::new(8);
        b.keep_from_start();
        assert!(b.push(b"abcd"));
        b.consume(4);
        assert_eq!(b.held(), 4);
        assert!(b.rewind());
        assert_eq!(b.bytes(), b"abcd");
        b.consume(4);
        assert!(b.push(b"efgh"));
        assert!(b.replayable());
        assert!(b.push(b"i"), "kept bytes given up for room");
        assert!(!b.replayable() && !b.rewind());
    }
}
