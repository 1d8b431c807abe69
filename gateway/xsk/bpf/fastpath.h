// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// The fast path's map layout: the one definition of what user space installs and the steering
// program reads. `sluice_xsk::fastpath` mirrors it (`FastKey`, `FastEntry`); a test there reads
// these structs back from the compiled object's BTF and compares every member's offset and the
// sizes, so the two cannot drift apart unnoticed.
//
// One entry per direction of a flow: the client's packets and the backend's are looked up by
// their own 5-tuple, as they arrive. The entry holds the whole rewrite user space would do for
// that direction — new addresses and ports, the checksum deltas, the MAC addresses, the egress —
// plus counters the program keeps and user space reads back.

#ifndef SLUICE_FASTPATH_H
#define SLUICE_FASTPATH_H

#include <linux/types.h>

/* The 5-tuple as it arrives: the layout of `sluice_lb::flow::FlowKey`. Addresses are 16 bytes,
 * IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d); ports in host byte order (as in `steer_key`). */
struct fast_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3]; /* always zero: part of the hashed key */
};

/* fast_entry.flags: leave through the interface the frame came in on (XDP_TX, one-armed);
 * without it the frame is redirected to `fast_tx[tx_port]` (two-armed). */
#define FAST_TX 1
/* fast_entry.flags, set by the program: a FIN or RST of this direction was handed back, and so
 * is every frame after it; the entry stays, with its counters, until user space reads and
 * removes it. */
#define FAST_CLOSING 2

struct fast_entry {
	/* The rewrite, written by user space only. */
	__u8 src[16];   /* new source (IPv4: ::ffff:a.b.c.d, the last four bytes are used) */
	__u8 dst[16];   /* new destination */
	__be16 sport;   /* new source port, network byte order */
	__be16 dport;   /* new destination port */
	__u16 ip_delta; /* RFC 1624 delta for the IPv4 header checksum: addresses and the TTL
			 * decrement, folded to 16 bits, as the checksum lies in memory */
	__u16 l4_delta; /* the same for the TCP/UDP checksum: addresses (pseudo-header), ports */
	__u8 dmac[6];   /* next hop */
	__u8 smac[6];   /* the egress interface's own */
	__u32 flags;    /* FAST_TX */
	__u32 tx_port;  /* key of `fast_tx` when not FAST_TX */
	__u32 pad;      /* zero; keeps the counters 8-byte aligned with no hidden padding */
	/* Written by the program, read back by user space (which writes zeros on install). */
	__u64 packets;      /* atomic add */
	__u64 bytes;        /* atomic add, whole frames */
	__u64 last_seen_ns; /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC, as of the last tick) of the last frame; plain store */
};

#endif
