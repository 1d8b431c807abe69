//! HPACK (RFC 7541): the header compression of HTTP/2 — a [`Decoder`] for the peer's header
//! blocks and an [`Encoder`] for ours, each with its own dynamic table.
//!
//! # Decoding
//! [`Decoder::decode`] takes one complete header block (the HEADERS or PUSH_PROMISE fragment
//! and its CONTINUATIONs, joined) and fills a [`HeaderList`]: indexed fields (§6.1), literals
//! with incremental indexing, without indexing and never indexed (§6.2, the never-indexed bit
//! kept so a proxy can pass it on, §7.1.3), dynamic table size updates (§6.3: only at the start
//! of a block, at most the size we advertised in SETTINGS_HEADER_TABLE_SIZE — else a
//! [`DecodeError`]), integers (§5.1, at most 2^32 - 1) and strings, raw or Huffman (§5.2, the
//! padding checked).
//!
//! **HPACK bombs.** A small block can name a large table entry many times. The decoded size of
//! the list (RFC 9113 §6.5.2: name + value + 32 per field) is counted field by field and checked
//! *before* a field's bytes are copied: once it passes the list's limit, nothing more is stored
//! and the list is marked [`HeaderList::is_oversize`], while the rest of the block is still
//! decoded — only so that the dynamic table stays the one the peer's encoder has, which the
//! connection needs; a literal that goes into the table is at most the table's size. The work
//! is linear in the block's length (itself bounded by the connection), whatever it expands to.
//!
//! # Encoding
//! [`Encoder::encode`] writes a block: a field equal to a static or dynamic entry as an index,
//! else a literal whose name is indexed when it can be, Huffman-coded when that is shorter.
//! Literals go into the dynamic table unless they are sensitive ([`Field::never_index`], and
//! `authorization`/`proxy-authorization`: never indexed) or change with every message
//! (`:path`, `content-length`, `date`, `etag`, `last-modified`, `age`, `x-request-id`,
//! `cookie`, `set-cookie`: without indexing). Names are written lowercase. A change of the
//! peer's table size is signalled at the start of the next block (§4.2).
//!
//! # Allocation
//! The tables' byte rings are allocated when a decoder or encoder is made; their entry lists, the
//! header list's storage and the scratch buffers grow as they are used, to the most a
//! connection has needed (a header list to its limit at most), so that an idle connection that
//! never saw a large head holds little. After that, decoding and encoding allocate nothing but
//! the growth of the caller's output buffer. Hot path: yes. No `unsafe`.

use std::collections::VecDeque;

use super::huffman::{self, HuffmanError};

/// Per-entry overhead in table and list sizes (RFC 7541 §4.1, RFC 9113 §6.5.2).
pub const ENTRY_OVERHEAD: usize = 32;

/// The default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
#[rustfmt::skip]
pub const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""), (b":method", b"GET"), (b":method", b"POST"), (b":path", b"/"),
    (b":path", b"/index.html"), (b":scheme", b"http"), (b":scheme", b"https"),
    (b":status", b"200"), (b":status", b"204"), (b":status", b"206"), (b":status", b"304"),
    (b":status", b"400"), (b":status", b"404"), (b":status", b"500"),
    (b"accept-charset", b""), (b"accept-encoding", b"gzip, deflate"), (b"accept-language", b""),
    (b"accept-ranges", b""), (b"accept", b""), (b"access-control-allow-origin", b""),
    (b"age", b""), (b"allow", b""), (b"authorization", b""), (b"cache-control", b""),
    (b"content-disposition", b""), (b"content-encoding", b""), (b"content-language", b""),
    (b"content-length", b""), (b"content-location", b""), (b"content-range", b""),
    (b"content-type", b""), (b"cookie", b""), (b"date", b""), (b"etag", b""), (b"expect", b""),
    (b"expires", b""), (b"from", b""), (b"host", b""), (b"if-match", b""),
    (b"if-modified-since", b""), (b"if-none-match", b""), (b"if-range", b""),
    (b"if-unmodified-since", b""), (b"last-modified", b""), (b"link", b""), (b"location", b""),
    (b"max-forwards", b""), (b"proxy-authenticate", b""), (b"proxy-authorization", b""),
    (b"range", b""), (b"referer", b""), (b"refresh", b""), (b"retry-after", b""),
    (b"server", b""), (b"set-cookie", b""), (b"strict-transport-security", b""),
    (b"transfer-encoding", b""), (b"user-agent", b""), (b"vary", b""), (b"via", b""),
    (b"www-authenticate", b""),
];

/// Why a header block cannot be decoded: a connection error of type COMPRESSION_ERROR
/// (RFC 9113 §4.3) — the decoder's state is no longer the peer's encoder's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer over 2^32 - 1, or with more continuation bytes than that needs.
    IntegerOverflow,
    /// Index 0, or past the end of the static and dynamic tables.
    BadIndex,
    /// A Huffman string containing EOS.
    HuffmanEos,
    /// A Huffman string badly padded.
    HuffmanPadding,
    /// A dynamic table size update over the size we advertised.
    TableSizeTooLarge,
    /// A dynamic table size update after a field representation (RFC 7541 §4.2).
    TableSizeUpdateLate,
}

impl DecodeError {
    /// A stable snake_case name for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            DecodeError::Truncated => "hpack_truncated",
            DecodeError::IntegerOverflow => "hpack_integer_overflow",
            DecodeError::BadIndex => "hpack_bad_index",
            DecodeError::HuffmanEos => "hpack_huffman_eos",
            DecodeError::HuffmanPadding => "hpack_huffman_padding",
            DecodeError::TableSizeTooLarge => "hpack_table_size_too_large",
            DecodeError::TableSizeUpdateLate => "hpack_table_size_update_late",
        }
    }
}

impl From<HuffmanError> for DecodeError {
    fn from(e: HuffmanError) -> DecodeError {
        match e {
            HuffmanError::Eos => DecodeError::HuffmanEos,
            HuffmanError::Padding => DecodeError::HuffmanPadding,
        }
    }
}

/// Decodes an integer with an `n`-bit prefix (RFC 7541 §5.1) from the front of `input`:
/// the value and the bytes it took.
pub fn decode_int(input: &[u8], n: u8) -> Result<(u32, usize), DecodeError> {
    let first = *input.first().ok_or(DecodeError::Truncated)?;
    let max = (1u32 << n) - 1;
    let v = u32::from(first) & max;
    if v < max {
        return Ok((v, 1));
    }
    let mut value = u64::from(max);
    let mut shift = 0;
    for (i, &b) in input[1..].iter().enumerate() {
        // Five continuation bytes carry 35 bits: more than any u32 needs.
        if i >= 5 {
            return Err(DecodeError::IntegerOverflow);
        }
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(DecodeError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok((value as u32, i + 2));
        }
        shift += 7;
    }
    Err(DecodeError::Truncated)
}

/// Appends `value` with an `n`-bit prefix whose other (high) bits are `flags` (RFC 7541 §5.1).
pub fn encode_int(value: usize, n: u8, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// One entry of a dynamic table: where its bytes begin in the ring, and their lengths.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: usize,
    name_len: usize,
    value_len: usize,
}

/// A dynamic table (RFC 7541 §2.3.2, §4): entries in a byte ring of the largest size it may
/// have, newest first. Its bytes never overlap because an entry's bytes are 32 less than its
/// size.
#[derive(Debug)]
struct Table {
    ring: Vec<u8>,
    entries: VecDeque<Entry>,
    /// Where the next entry's bytes go.
    head: usize,
    /// The table's size: bytes + 32 per entry.
    size: usize,
    /// The current maximum size (≤ the ring's length).
    max_size: usize,
}

impl Table {
    fn new(capacity: usize) -> Table {
        Table {
            ring: vec![0; capacity.max(1)],
            entries: VecDeque::new(),
            head: 0,
            size: 0,
            max_size: capacity,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.size = 0;
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let Some(e) = self.entries.pop_back() else { break };
            self.size -= e.name_len + e.value_len + ENTRY_OVERHEAD;
        }
    }

    /// Sets the maximum size (≤ the capacity), evicting what no longer fits.
    fn set_max_size(&mut self, max: usize) {
        self.max_size = max.min(self.ring.len());
        self.evict_to(self.max_size);
    }

    /// Inserts an entry; one larger than the maximum size empties the table (§4.4).
    /// The name and value must not be bytes of this table (copy them out first).
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.clear();
            return;
        }
        self.evict_to(self.max_size - size);
        let start = self.head;
        for &b in name.iter().chain(value) {
            self.ring[self.head] = b;
            self.head += 1;
            if self.head == self.ring.len() {
                self.head = 0;
            }
        }
        self.entries.push_front(Entry { start, name_len: name.len(), value_len: value.len() });
        self.size += size;
    }

    /// The bytes at `start..start+len` of the ring, as up to two slices.
    fn slices(&self, start: usize, len: usize) -> (&[u8], &[u8]) {
        let cap = self.ring.len();
        let start = start % cap;
        if start + len <= cap {
            (&self.ring[start..start + len], &[])
        } else {
            (&self.ring[start..], &self.ring[..len - (cap - start)])
        }
    }

    /// The name of entry `i` (0: newest).
    fn name(&self, i: usize) -> (&[u8], &[u8]) {
        let e = self.entries[i];
        self.slices(e.start, e.name_len)
    }

    /// The value of entry `i` (0: newest).
    fn value(&self, i: usize) -> (&[u8], &[u8]) {
        let e = self.entries[i];
        self.slices(e.start + e.name_len, e.value_len)
    }
}

fn eq2(a: (&[u8], &[u8]), b: &[u8]) -> bool {
    a.0.len() + a.1.len() == b.len() && a.0 == &b[..a.0.len()] && a.1 == &b[a.0.len()..]
}

/// One decoded field: where its name and value lie in the list's storage.
#[derive(Debug, Clone, Copy)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
    never_indexed: bool,
}

/// A field of a [`HeaderList`], or one to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name (lowercase in HTTP/2; pseudo-header fields begin with `:`).
    pub name: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Decoded: the peer sent it as never indexed. Encoded: send it never indexed, and tell
    /// intermediaries to do the same (RFC 7541 §7.1.3).
    pub never_index: bool,
}

impl<'a> Field<'a> {
    /// A field that may be indexed.
    pub const fn new(name: &'a [u8], value: &'a [u8]) -> Field<'a> {
        Field { name, value, never_index: false }
    }
}

/// A decoded header list: fields in order, stored in one buffer allocated when the list is
/// made, as large as the list's size limit.
#[derive(Debug)]
pub struct HeaderList {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    /// The list's size so far (RFC 9113 §6.5.2), counting fields not stored.
    size: usize,
    limit: usize,
    oversize: bool,
}

impl HeaderList {
    /// A list holding up to `max_list_size` of fields (name + value + 32 each).
    pub fn new(max_list_size: usize) -> HeaderList {
        HeaderList { bytes: Vec::new(), spans: Vec::new(), size: 0, limit: max_list_size, oversize: false }
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.size = 0;
        self.oversize = false;
    }

    /// The decoded list was larger than the limit: its fields were not kept (those before the
    /// one that passed it are, but the list must be refused whole).
    pub fn is_oversize(&self) -> bool {
        self.oversize
    }

    /// The list's size (RFC 9113 §6.5.2), as far as it was counted: past the limit, counting
    /// stops at the field that passed it.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The number of fields kept.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// No field kept.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Field `i`.
    pub fn field(&self, i: usize) -> Field<'_> {
        let s = self.spans[i];
        Field {
            name: &self.bytes[s.name.0 as usize..s.name.1 as usize],
            value: &self.bytes[s.value.0 as usize..s.value.1 as usize],
            never_index: s.never_indexed,
        }
    }

    /// The fields in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Field<'_>> + '_ {
        (0..self.spans.len()).map(|i| self.field(i))
    }

    /// Counts a field of `len` bytes (name + value); false (and oversize) when it passes the
    /// limit.
    fn admit(&mut self, len: usize) -> bool {
        if self.oversize {
            return false;
        }
        self.size += len + ENTRY_OVERHEAD;
        if self.size > self.limit {
            self.oversize = true;
        }
        !self.oversize
    }
}

/// Where a literal's string lies in the block.
#[derive(Debug, Clone, Copy)]
struct Str {
    start: usize,
    len: usize,
    huffman: bool,
}

impl Str {
    /// Reads a string literal (RFC 7541 §5.2) at `pos`.
    fn read(block: &[u8], pos: usize) -> Result<(Str, usize), DecodeError> {
        let first = *block.get(pos).ok_or(DecodeError::Truncated)?;
        let (len, n) = decode_int(&block[pos..], 7)?;
        let start = pos + n;
        let len = len as usize;
        if block.len() - start < len {
            return Err(DecodeError::Truncated);
        }
        Ok((Str { start, len, huffman: first & 0x80 != 0 }, start + len))
    }

    /// The decoded length (a Huffman string is decoded, not stored, to count it).
    fn decoded_len(&self, block: &[u8]) -> Result<usize, DecodeError> {
        let bytes = &block[self.start..self.start + self.len];
        if !self.huffman {
            return Ok(bytes.len());
        }
        let mut n = 0;
        huffman::decode(bytes, |_| n += 1)?;
        Ok(n)
    }

    /// Appends the decoded string to `out`, which must have room for it.
    fn decode_into(&self, block: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let bytes = &block[self.start..self.start + self.len];
        if self.huffman {
            huffman::decode(bytes, |b| out.push(b))?;
        } else {
            out.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// An upper bound of the decoded length: the shortest code is 5 bits.
    fn max_len(&self) -> usize {
        if self.huffman { self.len * 8 / 5 } else { self.len }
    }
}

/// Where a field's name comes from.
#[derive(Debug, Clone, Copy)]
enum Name {
    Static(usize),
    Dynamic(usize),
    Literal(Str),
}

/// The HPACK decoder of one connection (RFC 7541 §3).
#[derive(Debug)]
pub struct Decoder {
    table: Table,
    /// The largest size a table size update may ask for: the SETTINGS_HEADER_TABLE_SIZE we
    /// advertised.
    max_table_size: usize,
    /// Room for an entry the list does not keep but the table must (at most the table size).
    scratch: Vec<u8>,
}

impl Decoder {
    /// A decoder whose table may grow to `max_table_size` (the SETTINGS_HEADER_TABLE_SIZE we
    /// advertise; 4,096 by default).
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder { table: Table::new(max_table_size), max_table_size, scratch: Vec::new() }
    }

    /// The dynamic table's size (RFC 7541 §4.1).
    pub fn table_size(&self) -> usize {
        self.table.size
    }

    /// The dynamic table's entries.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Decodes one whole header block into `list` (cleared first). Past the list's limit the
    /// rest is decoded for the table's sake only ([`HeaderList::is_oversize`]). An error leaves
    /// the decoder unusable: the connection must end (COMPRESSION_ERROR).
    pub fn decode(&mut self, block: &[u8], list: &mut HeaderList) -> Result<(), DecodeError> {
        list.clear();
        let mut pos = 0;
        let mut fields_seen = false;
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                // §6.1 indexed field.
                let (index, n) = decode_int(&block[pos..], 7)?;
                pos += n;
                self.indexed(index as usize, list)?;
                fields_seen = true;
            } else if b & 0xe0 == 0x20 {
                // §6.3 dynamic table size update.
                let (size, n) = decode_int(&block[pos..], 5)?;
                pos += n;
                if fields_seen {
                    return Err(DecodeError::TableSizeUpdateLate);
                }
                if size as usize > self.max_table_size {
                    return Err(DecodeError::TableSizeTooLarge);
                }
                self.table.set_max_size(size as usize);
            } else {
                // §6.2: with incremental indexing (01), without (0000), never (0001).
                let (index, n, indexing, never) = if b & 0xc0 == 0x40 {
                    let (i, n) = decode_int(&block[pos..], 6)?;
                    (i, n, true, false)
                } else {
                    let (i, n) = decode_int(&block[pos..], 4)?;
                    (i, n, false, b & 0x10 != 0)
                };
                pos += n;
                let name = if index == 0 {
                    let (s, next) = Str::read(block, pos)?;
                    pos = next;
                    Name::Literal(s)
                } else {
                    self.name_ref(index as usize)?
                };
                let (value, next) = Str::read(block, pos)?;
                pos = next;
                self.literal(block, name, value, indexing, never, list)?;
                fields_seen = true;
            }
        }
        Ok(())
    }

    fn name_ref(&self, index: usize) -> Result<Name, DecodeError> {
        match index {
            0 => Err(DecodeError::BadIndex),
            1..=61 => Ok(Name::Static(index - 1)),
            _ if index - 62 < self.table.len() => Ok(Name::Dynamic(index - 62)),
            _ => Err(DecodeError::BadIndex),
        }
    }

    fn indexed(&mut self, index: usize, list: &mut HeaderList) -> Result<(), DecodeError> {
        let start = list.bytes.len();
        match self.name_ref(index)? {
            Name::Static(i) => {
                let (n, v) = STATIC_TABLE[i];
                if list.admit(n.len() + v.len()) {
                    list.bytes.extend_from_slice(n);
                    list.bytes.extend_from_slice(v);
                    push_span(list, start, n.len(), false);
                }
            }
            Name::Dynamic(i) => {
                let e = self.table.entries[i];
                if list.admit(e.name_len + e.value_len) {
                    let (a, b) = self.table.slices(e.start, e.name_len + e.value_len);
                    list.bytes.extend_from_slice(a);
                    list.bytes.extend_from_slice(b);
                    push_span(list, start, e.name_len, false);
                }
            }
            Name::Literal(_) => unreachable!("name_ref never gives a literal"),
        }
        Ok(())
    }

    fn literal(
        &mut self,
        block: &[u8],
        name: Name,
        value: Str,
        indexing: bool,
        never: bool,
        list: &mut HeaderList,
    ) -> Result<(), DecodeError> {
        let name_max = match name {
            Name::Static(i) => STATIC_TABLE[i].0.len(),
            Name::Dynamic(i) => self.table.entries[i].name_len,
            Name::Literal(s) => s.max_len(),
        };
        // Count before copying. When even the largest the field can be fits the limit, it is
        // decoded straight into the list (whose buffer is the limit's size: no reallocation);
        // else its exact size is found first (a Huffman string decoded without storing).
        let bound_fits =
            !list.oversize && list.size + name_max + value.max_len() + ENTRY_OVERHEAD <= list.limit;
        if !bound_fits {
            let nlen = match name {
                Name::Literal(s) => s.decoded_len(block)?,
                _ => name_max,
            };
            let vlen = value.decoded_len(block)?;
            if !list.admit(nlen + vlen) {
                // Over the limit: not stored. The table still needs the entry.
                if indexing {
                    self.insert_unlisted(block, name, value, nlen + vlen)?;
                }
                return Ok(());
            }
            // It fits after all: undo the count, done again below with the bytes.
            list.size -= nlen + vlen + ENTRY_OVERHEAD;
        }
        let start = list.bytes.len();
        self.copy_name(block, name, &mut list.bytes)?;
        let nlen = list.bytes.len() - start;
        value.decode_into(block, &mut list.bytes)?;
        let vlen = list.bytes.len() - start - nlen;
        let kept = list.admit(nlen + vlen);
        debug_assert!(kept, "counted above");
        push_span(list, start, nlen, never);
        if indexing {
            let (n, v) = list.bytes[start..].split_at(nlen);
            self.table.insert(n, v);
        }
        Ok(())
    }

    /// Inserts a field the list did not keep into the table: through the scratch buffer when
    /// it fits the table, else the table is emptied (RFC 7541 §4.4) without decoding it.
    fn insert_unlisted(
        &mut self,
        block: &[u8],
        name: Name,
        value: Str,
        len: usize,
    ) -> Result<(), DecodeError> {
        if len + ENTRY_OVERHEAD > self.table.max_size {
            self.table.clear();
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut nlen = 0;
        let r = self.copy_name(block, name, &mut scratch).and_then(|()| {
            nlen = scratch.len();
            value.decode_into(block, &mut scratch)
        });
        if r.is_ok() {
            let (n, v) = scratch.split_at(nlen);
            self.table.insert(n, v);
        }
        self.scratch = scratch;
        r
    }

    /// Appends the name's decoded bytes to `out`.
    fn copy_name(&self, block: &[u8], name: Name, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        match name {
            Name::Static(i) => out.extend_from_slice(STATIC_TABLE[i].0),
            Name::Dynamic(i) => {
                let (a, b) = self.table.name(i);
                out.extend_from_slice(a);
                out.extend_from_slice(b);
            }
            Name::Literal(s) => s.decode_into(block, out)?,
        }
        Ok(())
    }
}

fn push_span(list: &mut HeaderList, start: usize, name_len: usize, never_indexed: bool) {
    let end = list.bytes.len();
    let mid = start + name_len;
    list.spans.push(Span {
        name: (start as u32, mid as u32),
        value: (mid as u32, end as u32),
        never_indexed,
    });
}

/// Names whose values change with every message: indexing them would only evict useful entries.
const NOT_INDEXED: &[&[u8]] = &[
    b":path",
    b"content-length",
    b"date",
    b"etag",
    b"last-modified",
    b"age",
    b"x-request-id",
    b"cookie",
    b"set-cookie",
    b"if-modified-since",
    b"if-none-match",
    b"content-range",
];

/// Names whose values are secrets: always never indexed (RFC 7541 §7.1.3).
const NEVER_INDEXED: &[&[u8]] = &[b"authorization", b"proxy-authorization"];

/// The HPACK encoder of one connection (RFC 7541 §3).
#[derive(Debug)]
pub struct Encoder {
    table: Table,
    /// Dynamic table size updates owed at the start of the next block: the smallest size since
    /// the last block, and the size now (RFC 7541 §4.2).
    pending: Option<(usize, usize)>,
    name_buf: Vec<u8>,
}

impl Encoder {
    /// An encoder whose dynamic table holds up to `max_table_size` (what the peer allows is
    /// applied with [`Encoder::set_peer_table_size`]; 4,096 until then, RFC 9113 §6.5.2).
    pub fn new(max_table_size: usize) -> Encoder {
        let mut table = Table::new(max_table_size);
        table.set_max_size(DEFAULT_TABLE_SIZE.min(max_table_size));
        let pending = (table.max_size != DEFAULT_TABLE_SIZE).then_some((table.max_size, table.max_size));
        Encoder { table, pending, name_buf: Vec::new() }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE: the table is kept within it (and ours), and the
    /// change is signalled at the start of the next block.
    pub fn set_peer_table_size(&mut self, size: usize) {
        let new = size.min(self.table.ring.len());
        if new == self.table.max_size && self.pending.is_none() {
            return;
        }
        let min = self.pending.map_or(new, |(m, _)| m.min(new)).min(self.table.max_size);
        self.table.set_max_size(new);
        self.pending = Some((min, new));
    }

    /// The dynamic table's size (RFC 7541 §4.1).
    pub fn table_size(&self) -> usize {
        self.table.size
    }

    /// The dynamic table's entries.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Appends one header block encoding `fields` to `out`.
    pub fn encode<'f>(&mut self, fields: impl IntoIterator<Item = Field<'f>>, out: &mut Vec<u8>) {
        self.begin_block(out);
        for f in fields {
            self.encode_field(f, out);
        }
    }

    /// Starts a block: writes the table size updates owed. Call once per block, before
    /// [`Encoder::encode_field`].
    pub fn begin_block(&mut self, out: &mut Vec<u8>) {
        if let Some((min, now)) = self.pending.take() {
            if min < now {
                encode_int(min, 5, 0x20, out);
            }
            encode_int(now, 5, 0x20, out);
        }
    }

    /// Appends one field's representation (its name lowercased).
    pub fn encode_field(&mut self, f: Field<'_>, out: &mut Vec<u8>) {
        self.name_buf.clear();
        self.name_buf.extend(f.name.iter().map(u8::to_ascii_lowercase));
        let name = &self.name_buf[..];
        let never = f.never_index || NEVER_INDEXED.contains(&name);
        let mut name_index = None;
        if let Some(entries) = static_entries(name) {
            name_index = Some(entries.start + 1);
            for i in entries {
                if STATIC_TABLE[i].1 == f.value && !never {
                    encode_int(i + 1, 7, 0x80, out);
                    return;
                }
            }
        }
        for i in 0..self.table.len() {
            if eq2(self.table.name(i), name) {
                if eq2(self.table.value(i), f.value) && !never {
                    encode_int(62 + i, 7, 0x80, out);
                    return;
                }
                name_index.get_or_insert(62 + i);
            }
        }
        let size = name.len() + f.value.len() + ENTRY_OVERHEAD;
        let indexing = !never && !NOT_INDEXED.contains(&name) && size <= self.table.max_size / 2;
        let index = name_index.unwrap_or(0);
        if indexing {
            encode_int(index, 6, 0x40, out);
        } else if never {
            encode_int(index, 4, 0x10, out);
        } else {
            encode_int(index, 4, 0x00, out);
        }
        if name_index.is_none() {
            write_string(name, out);
        }
        write_string(f.value, out);
        if indexing {
            self.table.insert(&self.name_buf, f.value);
        }
    }
}

/// The static table's entries named `name` (a range of 0-based indices: entries of one name
/// are adjacent), found by length first: one or two comparisons instead of 61.
fn static_entries(name: &[u8]) -> Option<std::ops::Range<usize>> {
    let r = match (name.len(), name) {
        (3, b"age") => 20..21,
        (3, b"via") => 59..60,
        (4, b"date") => 32..33,
        (4, b"etag") => 33..34,
        (4, b"from") => 36..37,
        (4, b"host") => 37..38,
        (4, b"link") => 44..45,
        (4, b"vary") => 58..59,
        (5, b":path") => 3..5,
        (5, b"allow") => 21..22,
        (5, b"range") => 49..50,
        (6, b"accept") => 18..19,
        (6, b"cookie") => 31..32,
        (6, b"expect") => 34..35,
        (6, b"server") => 53..54,
        (7, b":method") => 1..3,
        (7, b":scheme") => 5..7,
        (7, b":status") => 7..14,
        (7, b"expires") => 35..36,
        (7, b"referer") => 50..51,
        (7, b"refresh") => 51..52,
        (8, b"if-match") => 38..39,
        (8, b"if-range") => 41..42,
        (8, b"location") => 45..46,
        (10, b":authority") => 0..1,
        (10, b"set-cookie") => 54..55,
        (10, b"user-agent") => 57..58,
        (11, b"retry-after") => 52..53,
        (12, b"content-type") => 30..31,
        (12, b"max-forwards") => 46..47,
        (13, b"accept-ranges") => 17..18,
        (13, b"authorization") => 22..23,
        (13, b"cache-control") => 23..24,
        (13, b"content-range") => 29..30,
        (13, b"if-none-match") => 40..41,
        (13, b"last-modified") => 43..44,
        (14, b"accept-charset") => 14..15,
        (14, b"content-length") => 27..28,
        (15, b"accept-encoding") => 15..16,
        (15, b"accept-language") => 16..17,
        (16, b"content-encoding") => 25..26,
        (16, b"content-language") => 26..27,
        (16, b"content-location") => 28..29,
        (16, b"www-authenticate") => 60..61,
        (17, b"if-modified-since") => 39..40,
        (17, b"transfer-encoding") => 56..57,
        (18, b"proxy-authenticate") => 47..48,
        (19, b"content-disposition") => 24..25,
        (19, b"if-unmodified-since") => 42..43,
        (19, b"proxy-authorization") => 48..49,
        (25, b"strict-transport-security") => 55..56,
        (27, b"access-control-allow-origin") => 19..20,
        _ => return None,
    };
    Some(r)
}

/// Appends a string literal, Huffman-coded when that is shorter (RFC 7541 §5.2).
fn write_string(s: &[u8], out: &mut Vec<u8>) {
    let h = huffman::encoded_len(s);
    if h < s.len() {
        encode_int(h, 7, 0x80, out);
        huffman::encode(s, out);
    } else {
        encode_int(s.len(), 7, 0x00, out);
        out.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_entries_agree_with_the_table() {
        for (i, &(name, _)) in STATIC_TABLE.iter().enumerate() {
            let r = static_entries(name).unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(name)));
            assert!(r.contains(&i));
            assert!(r.clone().all(|k| STATIC_TABLE[k].0 == name));
            assert!(STATIC_TABLE.iter().enumerate().all(|(k, e)| e.0 != name || r.contains(&k)));
        }
        for name in [&b""[..], b"x-request-id", b"Date", b"dates", b":pat", b"content-lengths"] {
            assert_eq!(static_entries(name), None);
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn pairs(list: &HeaderList) -> Vec<(String, String)> {
        list.iter()
            .map(|f| {
                (String::from_utf8(f.name.to_vec()).unwrap(), String::from_utf8(f.value.to_vec()).unwrap())
            })
            .collect()
    }

    fn table(d: &Decoder) -> Vec<(String, String)> {
        (0..d.table.len())
            .map(|i| {
                let (a, b) = d.table.name(i);
                let (c, e) = d.table.value(i);
                (String::from_utf8([a, b].concat()).unwrap(), String::from_utf8([c, e].concat()).unwrap())
            })
            .collect()
    }

    type Step<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], usize);

    fn series(table_size: usize, steps: &[Step<'_>]) {
        let mut d = Decoder::new(table_size);
        let mut list = HeaderList::new(16 * 1024);
        for (i, (block, want, want_table, want_size)) in steps.iter().enumerate() {
            d.decode(&hex(block), &mut list).unwrap_or_else(|e| panic!("step {i}: {e:?}"));
            let own = |v: &[(&str, &str)]| -> Vec<(String, String)> {
                v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
            };
            assert_eq!(pairs(&list), own(want), "step {i}");
            assert_eq!(table(&d), own(want_table), "step {i} table");
            assert_eq!(d.table_size(), *want_size, "step {i} size");
        }
    }

    const REQ1: &[(&str, &str)] =
        &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    const REQ2: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ];
    const REQ3: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    const T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
    const T2: &[(&str, &str)] = &[("cache-control", "no-cache"), (":authority", "www.example.com")];
    const T3: &[(&str, &str)] =
        &[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")];

    #[test]
    fn rfc7541_c2_literals_and_indexed() {
        let mut d = Decoder::new(4096);
        let mut list = HeaderList::new(4096);
        d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"), &mut list)
            .unwrap();
        assert_eq!(pairs(&list), [("custom-key".into(), "custom-header".into())]);
        assert_eq!(d.table_size(), 55);
        let mut d = Decoder::new(4096);
        d.decode(&hex("040c 2f73 616d 706c 652f 7061 7468"), &mut list).unwrap();
        assert_eq!(pairs(&list), [(":path".into(), "/sample/path".into())]);
        assert_eq!(d.table_len(), 0);
        d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut list).unwrap();
        assert_eq!(pairs(&list), [("password".into(), "secret".into())]);
        assert!(list.field(0).never_index);
        assert_eq!(d.table_len(), 0);
        d.decode(&[0x82], &mut list).unwrap();
        assert_eq!(pairs(&list), [(":method".into(), "GET".into())]);
        assert!(!list.field(0).never_index);
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        series(
            4096,
            &[
                ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQ1, T1, 57),
                ("8286 84be 5808 6e6f 2d63 6163 6865", REQ2, T2, 110),
                ("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", REQ3, T3, 164),
            ],
        );
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        series(
            4096,
            &[
                ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ1, T1, 57),
                ("8286 84be 5886 a8eb 1064 9cbf", REQ2, T2, 110),
                ("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQ3, T3, 164),
            ],
        );
    }

    const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
    const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
    const LOC: &str = "https://www.example.com";
    const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    fn responses(blocks: [&str; 3]) {
        let r1 = [(":status", "302"), ("cache-control", "private"), ("date", DATE1), ("location", LOC)];
        let t1 = [("location", LOC), ("date", DATE1), ("cache-control", "private"), (":status", "302")];
        let r2 = [(":status", "307"), ("cache-control", "private"), ("date", DATE1), ("location", LOC)];
        let t2 = [(":status", "307"), ("location", LOC), ("date", DATE1), ("cache-control", "private")];
        let r3 = [
            (":status", "200"),
            ("cache-control", "private"),
            ("date", DATE2),
            ("location", LOC),
            ("content-encoding", "gzip"),
            ("set-cookie", COOKIE),
        ];
        let t3 = [("set-cookie", COOKIE), ("content-encoding", "gzip"), ("date", DATE2)];
        series(256, &[(blocks[0], &r1, &t1, 222), (blocks[1], &r2, &t2, 222), (blocks[2], &r3, &t3, 215)]);
    }

    #[test]
    fn rfc7541_c5_responses_without_huffman() {
        responses([
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
             6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
             3d31",
        ]);
    }

    #[test]
    fn rfc7541_c6_responses_with_huffman() {
        responses([
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ]);
    }

    #[test]
    fn rfc7541_c1_integers() {
        let mut out = Vec::new();
        encode_int(10, 5, 0, &mut out);
        assert_eq!(out, [10]);
        out.clear();
        encode_int(1337, 5, 0, &mut out);
        assert_eq!(out, [31, 154, 10]);
        assert_eq!(decode_int(&out, 5), Ok((1337, 3)));
        out.clear();
        encode_int(42, 8, 0, &mut out);
        assert_eq!(out, [42]);
        assert_eq!(decode_int(&[31, 154], 5), Err(DecodeError::Truncated));
        assert_eq!(decode_int(&[31, 0xff, 0xff, 0xff, 0xff, 0x0f], 5), Err(DecodeError::IntegerOverflow));
        assert_eq!(
            decode_int(&[31, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 5),
            Err(DecodeError::IntegerOverflow)
        );
        assert_eq!(decode_int(&[0x7f, 0x80, 0x80, 0x80, 0x80, 0x00], 7), Ok((127, 6)));
        let mut out = Vec::new();
        encode_int(u32::MAX as usize, 7, 0, &mut out);
        assert_eq!(decode_int(&out, 7), Ok((u32::MAX, out.len())));
    }

    #[test]
    fn malformed_blocks_are_compression_errors() {
        let mut list = HeaderList::new(4096);
        let cases: &[(&[u8], DecodeError)] = &[
            (&[0x80], DecodeError::BadIndex),
            (&[0xbe], DecodeError::BadIndex), // 62: the dynamic table is empty
            (&[0x40, 0x03, b'a'], DecodeError::Truncated),
            (&[0x40], DecodeError::Truncated),
            (&[0x3f, 0xe2, 0x1f], DecodeError::TableSizeTooLarge), // 4097
            (&[0x82, 0x20], DecodeError::TableSizeUpdateLate),
            (&[0x00, 0x81, 0xff, 0x00], DecodeError::HuffmanPadding),
            (&[0x00, 0x00, 0x84, 0xff, 0xff, 0xff, 0xff], DecodeError::HuffmanEos),
        ];
        for (block, want) in cases {
            let mut d = Decoder::new(4096);
            assert_eq!(d.decode(block, &mut list), Err(*want), "{block:02x?}");
        }
        // Size updates at the start are fine, even two; down to 0 empties the table.
        let mut d = Decoder::new(4096);
        d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"), &mut list)
            .unwrap();
        assert_eq!(d.table_len(), 1);
        d.decode(&[0x20, 0x3f, 0xe1, 0x1f, 0x82], &mut list).unwrap(); // 0, then 4096
        assert_eq!(d.table_len(), 0);
    }

    #[test]
    fn an_hpack_bomb_is_stopped_while_decoding() {
        // One 4,000-byte entry, then 10,000 one-byte references to it: 40 MB decoded.
        let mut block = vec![0x40];
        write_string(b"x-big", &mut block);
        let value = vec![b'v'; 4000];
        encode_int(value.len(), 7, 0, &mut block);
        block.extend_from_slice(&value);
        block.extend(std::iter::repeat_n(0xbe, 10_000));
        let mut d = Decoder::new(4096);
        let mut list = HeaderList::new(16 * 1024);
        let cap = list.bytes.capacity();
        d.decode(&block, &mut list).unwrap();
        assert!(list.is_oversize());
        // Stored: the literal and three references (4 × 4,037 ≤ 16 KiB); nothing more, and the
        // buffer grew no further than the limit asks.
        assert_eq!(list.len(), 4);
        assert!(list.size() <= 16 * 1024 + 4037);
        assert!(list.bytes.capacity() <= 2 * 16 * 1024, "{} bytes", list.bytes.capacity());
        assert_eq!(cap, 0, "storage grows as fields come");
        // The table is still the encoder's: the next block can refer to the entry.
        d.decode(&[0xbe], &mut list).unwrap();
        assert_eq!(list.field(0).name, b"x-big");
        assert!(!list.is_oversize());
    }

    #[test]
    fn a_literal_over_the_limit_still_goes_into_the_table() {
        let mut d = Decoder::new(4096);
        let mut list = HeaderList::new(100);
        let mut block = Vec::new();
        Encoder::new(4096).encode([Field::new(b"x-long-header-name", &[b'a'; 200])], &mut block);
        d.decode(&block, &mut list).unwrap();
        assert!(list.is_oversize());
        assert_eq!(list.len(), 0);
        assert_eq!(d.table_len(), 1);
        let mut big = HeaderList::new(4096);
        d.decode(&[0xbe], &mut big).unwrap();
        assert_eq!(big.field(0).value, &[b'a'; 200][..]);
    }

    #[test]
    fn encoder_round_trips_and_indexes() {
        let mut e = Encoder::new(4096);
        let mut d = Decoder::new(4096);
        let mut list = HeaderList::new(64 * 1024);
        let fields = [
            Field::new(b":status", b"200"),
            Field::new(b"Content-Type", b"application/grpc"),
            Field::new(b"server", b"sluice"),
            Field::new(b"content-length", b"12345"),
            Field { name: b"x-secret", value: b"s3cr3t", never_index: true },
            Field::new(b"authorization", b"Bearer abc"),
            Field::new(b"x-empty", b""),
        ];
        let mut first = Vec::new();
        e.encode(fields, &mut first);
        d.decode(&first, &mut list).unwrap();
        let got: Vec<_> = list.iter().map(|f| (f.name.to_vec(), f.value.to_vec(), f.never_index)).collect();
        let want: Vec<_> = fields
            .iter()
            .map(|f| {
                let never = f.never_index || f.name == b"authorization";
                (f.name.to_ascii_lowercase(), f.value.to_vec(), never)
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(e.table_size(), d.table_size());
        // The second time, the indexed fields cost a byte each: only content-length and the
        // two never-indexed fields are literals again.
        let mut second = Vec::new();
        e.encode(fields, &mut second);
        // (The table, newest first: x-empty 62, server 63, content-type 64.)
        assert_eq!(second[..3], [0x88, 0xc0, 0xbf], "{second:02x?}");
        assert_eq!(second.last(), Some(&0xbe));
        assert!(second.len() < first.len() * 2 / 3, "{} vs {}", second.len(), first.len());
        d.decode(&second, &mut list).unwrap();
        assert_eq!(list.len(), fields.len());
    }

    #[test]
    fn encoder_signals_table_size_changes() {
        let mut e = Encoder::new(4096);
        let mut d = Decoder::new(4096);
        let mut list = HeaderList::new(64 * 1024);
        let mut block = Vec::new();
        e.encode([Field::new(b"x-a", b"1")], &mut block);
        d.decode(&block, &mut list).unwrap();
        assert_eq!(d.table_len(), 1);
        e.set_peer_table_size(0);
        e.set_peer_table_size(1024);
        block.clear();
        e.encode([Field::new(b"x-b", b"2")], &mut block);
        assert_eq!(block[0], 0x20, "the smallest size first");
        d.decode(&block, &mut list).unwrap();
        assert_eq!(d.table_len(), 1, "x-a evicted by the size 0, x-b added");
        assert_eq!(e.table_size(), d.table_size());
    }
}
