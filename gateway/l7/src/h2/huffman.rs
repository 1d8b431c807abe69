//! The static Huffman code of HPACK (RFC 7541 §5.2, Appendix B): encoding, and decoding with
//! its padding rules.
//!
//! The code is canonical (codes of one length are consecutive, in symbol order, and follow the
//! shorter ones), which a test checks against the table below; the decoder relies on it: for
//! every length it keeps the first code and the left-justified limit, so a symbol is found by
//! comparing the next 32 bits of input with at most 26 limits, without any table built at run
//! time. Hot path: yes; nothing here allocates.

/// `(code, bit length)` of every symbol, 0..=255 and EOS (256): RFC 7541 Appendix B, the
/// "code as hex aligned to LSB" and "len in bits" columns.
#[rustfmt::skip]
pub(crate) const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),            //   0..
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),        //   4..
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),        //   8..
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),       //  12..
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),        //  16..
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),       //  20..
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),        //  24..
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),        //  28..
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),                          //  32 ' ' ! " #
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),                           //  36 $ % & '
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),                          //  40 ( ) * +
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),                                //  44 , - . /
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),                                   //  48 0 1 2 3
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),                                //  52 4 5 6 7
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),                                //  56 8 9 : ;
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),                         //  60 < = > ?
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),                             //  64 @ A B C
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),                                //  68 D E F G
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),                                //  72 H I J K
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),                                //  76 L M N O
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),                                //  80 P Q R S
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),                                //  84 T U V W
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),                             //  88 X Y Z [
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),                      //  92 \ ] ^ _
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),                               //  96 ` a b c
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),                                 // 100 d e f g
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),                                 // 104 h i j k
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),                                 // 108 l m n o
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),                                 // 112 p q r s
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),                                 // 116 t u v w
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),                             // 120 x y z {
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),                  // 124 | } ~ DEL
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),               // 128..
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),            // 132..
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),            // 136..
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),            // 140..
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),            // 144..
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),            // 148..
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),            // 152..
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),            // 156..
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),             // 160..
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),            // 164..
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),            // 168..
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),            // 172..
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),            // 176..
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),            // 180..
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),             // 184..
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),            // 188..
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),            // 192..
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),           // 196..
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),        // 200..
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),         // 204..
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),           // 208..
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),         // 212..
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),          // 216..
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),        // 220..
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),              // 224..
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),            // 228..
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),          // 232..
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),           // 236..
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),        // 240..
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),        // 244..
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),        // 248..
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),        // 252..
    (0x3fffffff, 30),                                                          // 256 EOS
];

/// The shortest and longest code lengths.
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// What the canonical decoder needs, computed at compile time from [`CODES`]'s lengths.
struct Canon {
    /// Symbols sorted by (length, symbol): the canonical order.
    sorted: [u16; 257],
    /// Index in `sorted` of the first symbol of each length.
    offset: [u16; MAX_LEN + 1],
    /// The first (smallest) code of each length.
    first: [u32; MAX_LEN + 1],
    /// For each length L, one past the last code of length L, left-justified to 32 bits (as a
    /// u64 so that the all-ones limit of the longest length does not overflow). A 32-bit window
    /// `w` holds a code of length L iff L is the smallest length with `w < limit[L]`.
    limit: [u64; MAX_LEN + 1],
}

const fn canon() -> Canon {
    let mut c = Canon {
        sorted: [0; 257],
        offset: [0; MAX_LEN + 1],
        first: [0; MAX_LEN + 1],
        limit: [0; MAX_LEN + 1],
    };
    let mut n = 0;
    let mut code: u32 = 0;
    let mut len = 1;
    while len <= MAX_LEN {
        c.offset[len] = n as u16;
        c.first[len] = code;
        let mut sym = 0;
        while sym < 257 {
            if CODES[sym].1 as usize == len {
                c.sorted[n] = sym as u16;
                n += 1;
                code += 1;
            }
            sym += 1;
        }
        c.limit[len] = (code as u64) << (32 - len);
        if len < MAX_LEN {
            code <<= 1;
        }
        len += 1;
    }
    c
}

static CANON: Canon = canon();

/// Why a Huffman string is refused (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// Padding longer than 7 bits, or not all ones (the most significant bits of EOS).
    Padding,
}

/// The encoded length, in bytes, of `input`.
pub(crate) fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input.iter().map(|&b| usize::from(CODES[usize::from(b)].1)).sum();
    bits.div_ceil(8)
}

/// Appends the Huffman encoding of `input` to `out`, padded with ones.
pub(crate) fn encode(input: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in input {
        let (code, len) = CODES[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        // At most 7 bits stay: keep only them so the shifts never overflow.
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        // RFC 7541 §5.2: pad with the most significant bits of EOS (all ones).
        out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
    }
}

/// Decodes `input`, handing each decoded byte to `sink`. Allocates nothing.
pub(crate) fn decode(input: &[u8], mut sink: impl FnMut(u8)) -> Result<(), HuffmanError> {
    let c = &CANON;
    let mut acc: u64 = 0;
    let mut bits: usize = 0;
    let mut next = input.iter();
    loop {
        // Top up to at least 32 bits while input lasts (at most 7 + 8*k ≤ 63 bits held).
        while bits <= 56 {
            match next.next() {
                Some(&b) => {
                    acc = (acc << 8) | u64::from(b);
                    bits += 8;
                }
                None => break,
            }
        }
        if bits == 0 {
            return Ok(());
        }
        // The next 32 bits, zero-filled past the end of the input.
        let w =
            if bits >= 32 { (acc >> (bits - 32)) & 0xffff_ffff } else { (acc << (32 - bits)) & 0xffff_ffff };
        let mut len = MIN_LEN;
        while len <= MAX_LEN && w >= c.limit[len] {
            len += 1;
        }
        if len > bits || len > MAX_LEN {
            // Not a whole code left: only padding may remain (fewer than 8 bits, all ones).
            let mask = (1u64 << bits) - 1;
            if bits >= 8 || acc & mask != mask {
                return Err(HuffmanError::Padding);
            }
            return Ok(());
        }
        let code = (w >> (32 - len)) as u32;
        let sym = c.sorted[usize::from(c.offset[len]) + (code - c.first[len]) as usize];
        if sym == 256 {
            return Err(HuffmanError::Eos);
        }
        sink(sym as u8);
        bits -= len;
        acc &= (1u64 << bits).wrapping_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_canonical_and_complete() {
        // Recompute every code from the lengths alone: a mistyped code or length breaks it.
        let mut code: u32 = 0;
        for len in 1..=MAX_LEN {
            for (sym, &(c, l)) in CODES.iter().enumerate() {
                if usize::from(l) == len {
                    assert_eq!(c, code, "symbol {sym}");
                    code += 1;
                }
            }
            if len < MAX_LEN {
                code <<= 1;
            }
        }
        // Kraft: a complete prefix code fills the code space exactly.
        let sum: u64 = CODES.iter().map(|&(_, l)| 1u64 << (MAX_LEN - usize::from(l))).sum();
        assert_eq!(sum, 1 << MAX_LEN);
    }

    fn dec(input: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut v = Vec::new();
        decode(input, |b| v.push(b)).map(|()| v)
    }

    #[test]
    fn rfc7541_c4_strings() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"www.example.com", &[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]),
            (b"no-cache", &[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]),
            (b"custom-key", &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f]),
            (b"custom-value", &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf]),
        ];
        for (plain, coded) in cases {
            let mut out = Vec::new();
            encode(plain, &mut out);
            assert_eq!(&out, coded);
            assert_eq!(encoded_len(plain), coded.len());
            assert_eq!(dec(coded).unwrap(), *plain);
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
        let mut out = Vec::new();
        encode(&all, &mut out);
        assert_eq!(out.len(), encoded_len(&all));
        assert_eq!(dec(&out).unwrap(), all);
        for b in 0..=255u8 {
            let mut out = Vec::new();
            encode(&[b, b, b], &mut out);
            assert_eq!(dec(&out).unwrap(), [b, b, b]);
        }
    }

    #[test]
    fn padding_and_eos_are_checked() {
        assert_eq!(dec(&[]).unwrap(), b"");
        // '0' is 00000 (5 bits); padding 111 is fine, 110 or 000 is not.
        assert_eq!(dec(&[0b0000_0111]).unwrap(), b"0");
        assert_eq!(dec(&[0b0000_0110]), Err(HuffmanError::Padding));
        // A whole byte of ones is padding longer than 7 bits.
        assert_eq!(dec(&[0b0000_0111, 0xff]), Err(HuffmanError::Padding));
        assert_eq!(dec(&[0xff]), Err(HuffmanError::Padding));
        // EOS (30 ones) then padding.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
    }
}
