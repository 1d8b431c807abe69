// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// Sluice's XDP steering program: redirect to the queue's AF_XDP socket only what the service
// table says is ours, pass everything else to the kernel (ARP for the host's own addresses, SSH,
// pings to the host, the host's own connections).
//
// The gateway keeps the `steer` map in step with each table generation. A key is
// (address, port, protocol, kind):
//   KIND_DST   destination address + port + protocol of a frontend (VIP:port, ClusterIP:port,
//              NodePort on each node address); port 0 with IPPROTO_ICMP(V6) = echo to a VIP.
//   KIND_OWNED an address whose ARP / neighbour solicitations the gateway answers (a VIP).
//   KIND_SNAT  a FullNAT source address: replies to it are ours when their destination port is
//              in [value.lo, value.hi]; ICMP errors to it are ours when the packet they quote
//              left from a port in that range. When the address is also one of the host's own
//              (value.flags & FLAG_HOST), a segment or datagram for which the host has a socket
//              (a listener, a connection bound to a port in the range) is the host's, not ours,
//              and so is an ICMP error quoting one of the host's flows.
//   KIND_SRC   a backend of a DNAT service (source address + port + protocol): its replies
//              are routed through this host and must be un-NATed — except those to one of the
//              host's own addresses (KIND_HOST) for which the host has a socket: the host's own
//              connection to the backend.
//   KIND_HOST  an address of the host's own.
// Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), as in the table.
//
// Frames redirected while no socket is bound to the queue fall back to XDP_PASS — unless the
// queue is held (`held[queue]` non-zero): a gateway served it and the program outlived it (it is
// attached through netlink so that it does). Then the frame is dropped (counted), so that while
// one gateway stops and the next starts, the kernel does not answer the service's flows (a
// FullNAT reply to an address of the host would meet a RST), and the next gateway carries on
// every flow from its journal. The next gateway replaces this program atomically.
//
// SYN cookies: a TCP SYN to a frontend (KIND_DST) spends one unit of this CPU's SYN budget
// (`cookie_cfg`: a token bucket of `cost_ns` per SYN, `burst_ns` deep). Within the budget it
// goes to the worker like any other frame; once the budget runs dry, the program answers every
// SYN itself — until the rate has stayed within the budget for `hold_ns` — with a SYN-ACK whose
// sequence number is a SYN cookie (XDP_TX), and keeps no state: a flood never reaches the
// worker. The client's ACK does (it is to a frontend), and the worker checks the
// cookie before it opens the connection to a backend. The cookie's definition is
// `sluice_model::syncookie` (SipHash-2-4 over the handshake, the time slot and the MSS class);
// `syncookie()` below must compute exactly the same, and a test checks that it does.
//
// The fast path (compiled in with -DSLUICE_FAST_PATH; `fastpath.h` has the map layout): before
// any of the above, a TCP or UDP frame whose 5-tuple is in `fast_flows` is rewritten here, as the
// worker would rewrite it, and sent on (XDP_TX, or a redirect through `fast_tx`). User space
// installs an entry once a flow is established and stays the authority: the program only applies
// decisions already made. It hands back (falls through to the steering below, which sends the
// frame to the worker) everything user space must see: frames of unknown flows, TCP SYN, FIN and
// RST (FIN and RST also mark this direction's entry closing: from then on every frame of it is
// handed back and the flow's closing is tracked in user space; the entry stays, with its
// counters, until user space reads and removes it), TTL or hop limit <= 1, IPv4 options and fragments, IPv6 extension
// headers, ICMP (errors are translated by the worker), and anything the worker's parser would
// drop as malformed, so that both paths drop the same frames.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "fastpath.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static struct bpf_sock *(*bpf_skc_lookup_tcp)(void *ctx, struct bpf_sock_tuple *tuple, __u32 size, __u64 netns,
					      __u64 flags) = (void *)BPF_FUNC_skc_lookup_tcp;
static struct bpf_sock *(*bpf_sk_lookup_udp)(void *ctx, struct bpf_sock_tuple *tuple, __u32 size, __u64 netns,
					     __u64 flags) = (void *)BPF_FUNC_sk_lookup_udp;
static long (*bpf_sk_release)(void *sock) = (void *)BPF_FUNC_sk_release;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
#ifdef SLUICE_FAST_PATH
static __u64 (*bpf_ktime_get_coarse_ns)(void) = (void *)BPF_FUNC_ktime_get_coarse_ns;
#endif
static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_tail;

#define KIND_DST 0
#define KIND_OWNED 1
#define KIND_SNAT 2
#define KIND_SRC 3
#define KIND_HOST 4

struct steer_key {
	__u8 addr[16];
	__u16 port; /* host byte order */
	__u8 proto;
	__u8 kind;
};

struct steer_value {
	__u16 lo;
	__u16 hi;
	__u32 flags;
};

#define FLAG_HOST 1
/* BPF_F_CURRENT_NETNS: the namespace of the device the frame arrived on. */
#define CURRENT_NETNS ((__u64)-1L)

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* Queues a gateway served: non-zero = drop, rather than pass, what cannot be redirected. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} held SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct steer_key);
	__type(value, struct steer_value);
} steer SEC(".maps");

/* Per-CPU counters: [0] redirected, [1] passed, [2] SYN-ACKs with a cookie sent, [3] frames
 * forwarded by the fast path, [4] frames of a fast flow handed back, [5] fast-path frames
 * dropped because their `fast_tx` slot was empty. */
#define COUNT_FAST 3
#define COUNT_FAST_HANDED_BACK 4
#define COUNT_FAST_NO_PORT 5
/* [6] frames of a held queue dropped for want of a socket (between two gateways). */
#define COUNT_HELD 6
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 7);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* The SYN cookie settings (`SynCookies` in steer.rs). cost_ns: budget one SYN spends; 0 = no
 * limit (cookies off), all ones = cookies for every SYN. */
struct cookie_cfg {
	__u64 k0;
	__u64 k1;
	__u64 cost_ns;
	__u64 burst_ns;
	__u64 hold_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cookie_cfg);
} cookie_cfg SEC(".maps");

/* The interface's own MAC address, bytes 0..5 in bits 47..0, with bit 63 set; 0: not checked.
 * A unicast frame to another MAC is not the host's: a NIC in promiscuous mode, a veth or a
 * bridge port hands such frames over, and the kernel drops them (PACKET_OTHERHOST). Passed
 * to it, they are dropped there, never forwarded by the gateway — which would otherwise serve
 * another node's traffic as its own. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} own_mac SEC(".maps");

static __always_inline int other_host(const struct ethhdr *eth)
{
	if (eth->h_dest[0] & 1)
		return 0; /* broadcast, multicast */
	__u32 zero = 0;
	__u64 *own = bpf_map_lookup_elem(&own_mac, &zero);
	if (!own || !(*own >> 63))
		return 0;
	__u64 dst = 0;
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		dst = (dst << 8) | eth->h_dest[i];
	return dst != (*own & 0xffffffffffffULL);
}

/* This CPU's SYN budget: credit in nanoseconds, when it was last topped up, and until when
 * every SYN is answered with a cookie (the budget ran dry: a flood). */
struct budget {
	__u64 credit;
	__u64 last;
	__u64 flood_until;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct budget);
} syn_budget SEC(".maps");

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define ARPOP_REQUEST_ 1
#define ND_NEIGHBOR_SOLICIT_ 135
#define ICMP_DEST_UNREACH_ 3
#define ICMP_TIME_EXCEEDED_ 11
#define ICMP_PARAMETERPROB_ 12

static __always_inline __u16 bswap16(__u16 x) { return (__u16)((x >> 8) | (x << 8)); }

static __always_inline void mapped4(__u8 *out, const void *a)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, a, 4);
}

static __always_inline int count(__u32 which, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&counts, &which);
	if (c)
		*c += 1;
	return verdict;
}

static __always_inline int lookup(struct steer_key *k)
{
	return bpf_map_lookup_elem(&steer, k) != 0;
}

/* The FullNAT port range of address k->addr for protocol k->proto, or null. Clobbers port, kind. */
static __always_inline struct steer_value *snat_range(struct steer_key *k)
{
	k->port = 0;
	k->kind = KIND_SNAT;
	return bpf_map_lookup_elem(&steer, k);
}

static __always_inline int is_icmp4_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH_ || type == ICMP_TIME_EXCEEDED_ || type == ICMP_PARAMETERPROB_;
}

static __always_inline int is_icmp6_error(__u8 type)
{
	return type >= 1 && type <= 4;
}

/*
 * Whether the host has a socket for a TCP/UDP packet from `src`:`sport` to `dst`:`dport` (ports
 * in network order): a listener or connection for TCP (request and TIME_WAIT sockets
 * included), a bound socket for UDP.
 */
struct packet_addrs {
	__u8 src[16];
	__u8 dst[16];
	int v4;
};

static __always_inline int host_socket(struct xdp_md *ctx, __u8 proto, const struct packet_addrs *a, __u16 sport,
				       __u16 dport)
{
	struct bpf_sock_tuple t = {};
	__u32 size;
	if (a->v4) {
		__builtin_memcpy(&t.ipv4.saddr, a->src + 12, 4);
		__builtin_memcpy(&t.ipv4.daddr, a->dst + 12, 4);
		t.ipv4.sport = sport;
		t.ipv4.dport = dport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, a->src, 16);
		__builtin_memcpy(t.ipv6.daddr, a->dst, 16);
		t.ipv6.sport = sport;
		t.ipv6.dport = dport;
		size = sizeof(t.ipv6);
	}
	struct bpf_sock *sk;
	if (proto == IPPROTO_TCP)
		sk = bpf_skc_lookup_tcp(ctx, &t, size, CURRENT_NETNS, 0);
	else
		sk = bpf_sk_lookup_udp(ctx, &t, size, CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/*
 * An ICMP error at `l4` (8-byte ICMP header, then the quoted IP header and at least 8 bytes of
 * its transport header) sent to a FullNAT source address with range `v`: ours when the quoted
 * packet is TCP or UDP and left from a port in the range, and the host has no socket for it.
 */
static __always_inline int icmp_error_is_ours(struct xdp_md *ctx, void *l4, void *end, int v4,
					      struct steer_value *v)
{
	/* The quoted packet went out from us (quoted source) to the peer: the host's socket for
	 * it is looked up as a packet from the peer would be, so the peer is the "source". */
	struct packet_addrs peer = { .v4 = v4 };
	__u8 qproto;
	void *ql4;
	if (v4) {
		struct iphdr *q = l4 + 8;
		if ((void *)(q + 1) > end)
			return 0;
		if (q->ihl < 5)
			return 0;
		qproto = q->protocol;
		mapped4(peer.src, &q->daddr);
		mapped4(peer.dst, &q->saddr);
		ql4 = (void *)q + q->ihl * 4;
	} else {
		struct ipv6hdr *q = l4 + 8;
		if ((void *)(q + 1) > end)
			return 0;
		qproto = q->nexthdr;
		__builtin_memcpy(peer.src, &q->daddr, 16);
		__builtin_memcpy(peer.dst, &q->saddr, 16);
		ql4 = q + 1;
	}
	if (qproto != IPPROTO_TCP && qproto != IPPROTO_UDP)
		return 0;
	struct udphdr *u = ql4;
	if ((void *)(u + 1) > end)
		return 0;
	__u16 qsport = bswap16(u->source);
	if (qsport < v->lo || qsport > v->hi)
		return 0;
	if ((v->flags & FLAG_HOST) && host_socket(ctx, qproto, &peer, u->dest, u->source))
		return 0;
	return 1;
}

/* --- SYN cookies ------------------------------------------------------------------------------ */

#define STEER_PASS 0
#define STEER_REDIRECT 1
#define STEER_COOKIE 2

#define TCP_SYN_ 0x02
#define TCP_RST_ 0x04
#define TCP_ACK_ 0x10
#define COOKIE_TTL 64
#define COOKIE_WINDOW 65535
/* The time slot: CLOCK_MONOTONIC >> SLOT_SHIFT (sluice_model::syncookie::SLOT_SHIFT). */
#define SLOT_SHIFT 36

static __always_inline __u32 bswap32(__u32 x)
{
	return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >> 8) & 0xff00) | (x >> 24);
}

/* sluice_model::syncookie::MSS_CLASSES */
static __always_inline __u16 mss_of_class(__u32 c)
{
	return c == 0 ? 536 : c == 1 ? 1220 : c == 2 ? 1440 : 1460;
}

static __always_inline __u32 class_of_mss(__u32 mss)
{
	return mss >= 1460 ? 3 : mss >= 1440 ? 2 : mss >= 1220 ? 1 : 0;
}

/* A SYN to answer with a cookie: the settings, and the clock read once for both the budget and
 * the cookie's time slot. */
struct cookie_job {
	struct cookie_cfg *cfg;
	__u64 now;
};

/* Whether this SYN is beyond this CPU's budget (and so is answered with a cookie). */
static __always_inline int over_budget(struct cookie_cfg *c, __u64 now)
{
	if (c->cost_ns == ~0ULL)
		return 1;
	__u32 zero = 0;
	struct budget *b = bpf_map_lookup_elem(&syn_budget, &zero);
	if (!b)
		return 0;
	__u64 credit = b->credit + (now - b->last);
	if (credit > c->burst_ns)
		credit = c->burst_ns;
	b->last = now;
	if (credit < c->cost_ns) {
		/* Dry: a flood. Every SYN gets a cookie until the rate has stayed within the budget
		 * for hold_ns — not only those beyond it, or the budget's share of a flood would
		 * reach the workers and the backends, half-open, every second it lasts. */
		b->credit = credit;
		b->flood_until = now + c->hold_ns;
		return 1;
	}
	b->credit = credit - c->cost_ns;
	return now < b->flood_until;
}

#define ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13) ^ v0;                                                            \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16) ^ v2;                                                            \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21) ^ v0;                                                            \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17) ^ v2;                                                            \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)
#define SIPABSORB(m)                                                                               \
	do {                                                                                       \
		v3 ^= (m);                                                                         \
		SIPROUND;                                                                          \
		SIPROUND;                                                                          \
		v0 ^= (m);                                                                         \
	} while (0)

/* sluice_model::syncookie::cookie: SipHash-2-4 of six words. */
static __always_inline __u32 syncookie(const struct cookie_cfg *c, const struct packet_addrs *a, __u16 sport,
				       __u16 dport, __u32 isn, __u32 slot, __u32 class)
{
	__u64 m[4];
	__builtin_memcpy(m, a->src, 16);
	__builtin_memcpy(m + 2, a->dst, 16);
	__u64 v0 = c->k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = c->k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = c->k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = c->k1 ^ 0x7465646279746573ULL;
	SIPABSORB(m[0]);
	SIPABSORB(m[1]);
	SIPABSORB(m[2]);
	SIPABSORB(m[3]);
	SIPABSORB((__u64)sport | ((__u64)dport << 16) | ((__u64)isn << 32));
	SIPABSORB((__u64)slot | ((__u64)class << 32));
	SIPABSORB(48ULL << 56);
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	__u64 h = v0 ^ v1 ^ v2 ^ v3;
	return ((__u32)h & ~3U) | class;
}

/* One's complement sum of `n` 16-bit words at `p` (as they lie in memory), added to `acc`. */
#define SUM_WORDS(acc, p, n)                                                                       \
	do {                                                                                       \
		_Pragma("unroll") for (int _i = 0; _i < (n); _i++) (acc) += ((__u16 *)(p))[_i];    \
	} while (0)

static __always_inline __u16 fold(__u64 acc)
{
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (__u16)~acc;
}

/*
 * Answers the SYN at `l3off` (an IPv4 header without options, or an IPv6 header followed by
 * TCP) with a SYN-ACK carrying a cookie and an MSS option, in place. 1: answered (XDP_TX);
 * 0: not touched (hand it to the worker); -1: the frame was resized and cannot be used (drop).
 */
static __always_inline int answer_with_cookie(struct xdp_md *ctx, __u32 l3off, int v4, const struct packet_addrs *a,
					      const struct cookie_job *job)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 l4off = (l3off & 0x1f) + (v4 ? 20 : 40);
	struct tcphdr *th = data + l4off;
	if ((void *)(th + 1) > end)
		return 0;
	__u32 doff = th->doff * 4;
	__u32 mss = 0, has_mss = 0, off = 0;
	__u8 *opts = (void *)(th + 1);
	/* a bounded loop (the verifier walks it): MSS is usually the first option */
	for (int i = 0; i < 8; i++) {
		if (off + 20 + 4 > doff)
			break;
		__u8 *o = opts + (off & 0x3f);
		if ((void *)(o + 4) > end)
			break;
		if (o[0] == 0)
			break;
		if (o[0] == 1) {
			off += 1;
			continue;
		}
		if (o[0] == 2 && o[1] == 4) {
			mss = ((__u32)o[2] << 8) | o[3];
			has_mss = 1;
			break;
		}
		if (o[1] < 2)
			break;
		off += o[1];
	}
	__u32 class = has_mss ? class_of_mss(mss) : 0;
	__u16 sport = th->source, dport = th->dest;
	__u32 isn = bswap32(th->seq);
	__u32 cookie = syncookie(job->cfg, a, bswap16(sport), bswap16(dport), isn, (__u32)(job->now >> SLOT_SHIFT),
				 class);

	int delta = (int)(l4off + 24) - (int)(end - data);
	if (delta != 0 && bpf_xdp_adjust_tail(ctx, delta))
		return 0;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	void *l3 = data + (l3off & 0x1f);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);

	__u64 sum = 0;
	if (v4) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) + 24 > end)
			return -1;
		__u32 t = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = t;
		ip->tot_len = bswap16(20 + 24);
		ip->id = 0;
		ip->frag_off = bswap16(0x4000);
		ip->ttl = COOKIE_TTL;
		ip->check = 0;
		__u64 ipsum = 0;
		SUM_WORDS(ipsum, ip, 10);
		ip->check = fold(ipsum);
		SUM_WORDS(sum, &ip->saddr, 4);
		th = (void *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) + 24 > end)
			return -1;
		struct in6_addr t = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = t;
		ip6->payload_len = bswap16(24);
		ip6->hop_limit = COOKIE_TTL;
		SUM_WORDS(sum, &ip6->saddr, 16);
		th = (void *)(ip6 + 1);
	}
	if ((void *)th + 24 > end)
		return -1;
	th->source = dport;
	th->dest = sport;
	th->seq = bswap32(cookie);
	th->ack_seq = bswap32(isn + 1);
	__u8 *b = (__u8 *)th;
	b[12] = 6 << 4;
	b[13] = TCP_SYN_ | TCP_ACK_;
	th->window = bswap16(COOKIE_WINDOW);
	th->check = 0;
	th->urg_ptr = 0;
	__u16 m = mss_of_class(class);
	b[20] = 2;
	b[21] = 4;
	b[22] = m >> 8;
	b[23] = m & 0xff;
	sum += bswap16(IPPROTO_TCP) + bswap16(24);
	SUM_WORDS(sum, th, 12);
	th->check = fold(sum);
	return 1;
}

/* Decides for an L4 header at `l4` of protocol `proto`, addresses `a`: STEER_PASS,
 * STEER_REDIRECT, or STEER_COOKIE (a SYN to a frontend beyond the budget; `job` then holds the
 * cookie settings and the clock, read once for the budget and the cookie's time slot). */
static __always_inline int steer_l4(struct xdp_md *ctx, void *l4, __u8 proto, const struct packet_addrs *a,
				    struct cookie_job *job)
{
	void *end = (void *)(long)ctx->data_end;
	const __u8 *dst = a->dst, *src = a->src;
	int v4 = a->v4;
	struct steer_key k = {};
	__u16 sport = 0, dport = 0, sport_n = 0, dport_n = 0;

	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		struct udphdr *u = l4; /* ports sit at the same offsets in TCP */
		if ((void *)(u + 1) > end)
			return 0;
		sport_n = u->source;
		dport_n = u->dest;
		sport = bswap16(sport_n);
		dport = bswap16(dport_n);
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		__u8 *t = l4;
		if ((void *)(t + 1) > end)
			return 0;
		__builtin_memcpy(k.addr, dst, 16);
		k.proto = proto;
		/* echo requests (and errors) to a VIP */
		if (lookup(&k))
			return 1;
		/* an error to a FullNAT source address may quote one of our flows */
		int error = proto == IPPROTO_ICMP ? is_icmp4_error(*t) : is_icmp6_error(*t);
		if (!error)
			return 0;
		struct steer_value *v = snat_range(&k);
		return v && icmp_error_is_ours(ctx, l4, end, v4, v);
	} else {
		return 0;
	}

	__builtin_memcpy(k.addr, dst, 16);
	k.port = dport;
	k.proto = proto;
	k.kind = KIND_DST;
	if (lookup(&k)) {
		if (proto != IPPROTO_TCP)
			return STEER_REDIRECT;
		__u8 *tf = l4 + 13;
		if ((void *)(tf + 1) > end || (*tf & (TCP_SYN_ | TCP_ACK_ | TCP_RST_)) != TCP_SYN_)
			return STEER_REDIRECT;
		__u32 zero = 0;
		struct cookie_cfg *c = bpf_map_lookup_elem(&cookie_cfg, &zero);
		if (!c || c->cost_ns == 0)
			return STEER_REDIRECT;
		job->cfg = c;
		job->now = bpf_ktime_get_ns();
		return over_budget(c, job->now) ? STEER_COOKIE : STEER_REDIRECT;
	}
	struct steer_value *v = snat_range(&k);
	if (v && dport >= v->lo && dport <= v->hi)
		return !((v->flags & FLAG_HOST) && host_socket(ctx, proto, a, sport_n, dport_n));
	__builtin_memcpy(k.addr, src, 16);
	k.port = sport;
	k.kind = KIND_SRC;
	if (!lookup(&k))
		return 0;
	struct steer_key h = {};
	__builtin_memcpy(h.addr, dst, 16);
	h.kind = KIND_HOST;
	return !(lookup(&h) && host_socket(ctx, proto, a, sport_n, dport_n));
}

/* --- The fast path for established flows (see the top of the file and fastpath.h) ----------- */

#ifdef SLUICE_FAST_PATH


/* Entries, both directions of a flow: 2 per offloaded flow. A plain hash, written by user
 * space only, so nothing is ever evicted behind its back: when full, an install fails, is
 * counted there, and the flow stays on the AF_XDP path. */
#define FAST_MAX_ENTRIES 131072

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FAST_MAX_ENTRIES);
	__type(key, struct fast_key);
	__type(value, struct fast_entry);
} fast_flows SEC(".maps");

/* Two-armed egress: the gateway's ports, by the index the worker knows them by. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val); /* ifindex, and no program of its own */
} fast_tx SEC(".maps");

#define FAST_HAND_BACK (-1)
#define TCP_FIN_ 0x01

/* RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m'), the sum of ~m + m' over the changed words
 * precomputed by user space (`delta`). Byte order does not change a one's-complement sum
 * (RFC 1071 §2(B)): checksum and delta are both taken as they lie in memory. The same fold
 * as `sluice_wire::checksum::Delta::apply`, so the result is the same bits, 0xffff and 0 alike. */
static __always_inline __u16 csum_apply(__u16 check, __u16 delta)
{
	__u32 s = (__u32)(__u16)~check + delta;
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/*
 * The transport half, the same for both families: checks what the worker's parser checks
 * (sluice_wire's new_checked: what it would drop as malformed goes to it, to be dropped and
 * counted there), completes the key with the ports and looks it up. A frame to hand back
 * gives 0; otherwise the ports and the checksum are rewritten, and the entry returned.
 */
static __always_inline struct fast_entry *fast_l4(struct fast_key *k, void *l4, __u32 seg_len, void *end)
{
	__u16 *check;
	__u8 tcp_flags = 0;
	struct udphdr *ports = l4; /* ports sit at the same offsets in TCP */
	if (k->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end || seg_len < sizeof(*th) || th->doff < 5 || th->doff * 4 > seg_len)
			return 0;
		tcp_flags = ((__u8 *)th)[13];
		check = &th->check;
	} else if (k->proto == IPPROTO_UDP) {
		if ((void *)(ports + 1) > end || seg_len < sizeof(*ports))
			return 0;
		__u32 ulen = bswap16(ports->len);
		if (ulen < sizeof(*ports) || ulen > seg_len)
			return 0;
		check = &ports->check;
	} else {
		return 0; /* ICMP (errors are translated by the worker), extension headers, … */
	}
	k->sport = bswap16(ports->source);
	k->dport = bswap16(ports->dest);

	struct fast_entry *e = bpf_map_lookup_elem(&fast_flows, k);
	if (!e)
		return 0;
	if ((e->flags & FAST_CLOSING) || (tcp_flags & (TCP_SYN_ | TCP_FIN_ | TCP_RST_))) {
		/* The tracker follows the close from here; both entries go when user space sees this
		 * frame, after it has read their counters (which a delete here would lose: the close
		 * of a connection takes less than the installer's 10 ms). A plain store: the bit is
		 * only ever set here, and an install writes a new entry. */
		if (tcp_flags & (TCP_FIN_ | TCP_RST_))
			e->flags |= FAST_CLOSING;
		count(COUNT_FAST_HANDED_BACK, 0);
		return 0;
	}

	/* sluice_lb::nat::rewrite, with its deltas precomputed (nat::fixed_rewrite) */
	__u16 c = *check;
	if (k->proto == IPPROTO_TCP) {
		*check = csum_apply(c, e->l4_delta);
	} else if (c != 0) {
		/* RFC 768: 0 means "no checksum" and stays 0; a computed 0 is sent as all ones */
		c = csum_apply(c, e->l4_delta);
		*check = c ? c : 0xffff;
	}
	ports->source = e->sport;
	ports->dest = e->dport;
	return e;
}

/* Sends a rewritten frame: the MAC addresses, the counters, the egress. */
static __always_inline int fast_send(struct xdp_md *ctx, struct fast_entry *e)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP; /* cannot happen (an IP header lies after it); the verifier wants it said */
	__builtin_memcpy(eth->h_dest, e->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, e->smac, ETH_ALEN);

	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, (__u64)(end - data));
	/* CLOCK_MONOTONIC as of the last tick (Linux >= 5.11): the read-back compares it with
	 * timeouts of seconds, and the exact clock cost 16 ns a frame here (read_tsc under a
	 * hypervisor; benches/README, issue 15's profile). */
	e->last_seen_ns = bpf_ktime_get_coarse_ns();
	count(COUNT_FAST, 0);
	if (e->flags & FAST_TX)
		return XDP_TX;
	/* An empty slot must not pass a rewritten frame to the kernel: drop it, counted. */
	int r = bpf_redirect_map(&fast_tx, e->tx_port, XDP_DROP);
	return r == XDP_DROP ? count(COUNT_FAST_NO_PORT, XDP_DROP) : r;
}

/*
 * The fast path: XDP_TX or a redirect for a frame it rewrote, XDP_DROP when the egress is
 * missing, FAST_HAND_BACK for a frame user space must see (it goes on to the steering).
 * `l3` follows the Ethernet header (and VLAN tags, which are kept, as the worker keeps them).
 * One branch per family, each whole: the verifier does not carry "this is IPv4" from one
 * test of the ethertype to the next.
 */
static __always_inline int fast_path(struct xdp_md *ctx, void *l3, __u16 eth_proto)
{
	void *end = (void *)(long)ctx->data_end;
	struct fast_key k = {};
	struct fast_entry *e;

	if (eth_proto == bswap16(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return FAST_HAND_BACK;
		/* options and fragments are the worker's; so is a TTL it must answer or drop */
		if (ip->version != 4 || ip->ihl != 5 || (ip->frag_off & bswap16(0x3fff)) || ip->ttl <= 1)
			return FAST_HAND_BACK;
		__u32 tot = bswap16(ip->tot_len);
		if (tot < sizeof(*ip) || l3 + tot > end)
			return FAST_HAND_BACK;
		k.proto = ip->protocol;
		mapped4(k.src, &ip->saddr);
		mapped4(k.dst, &ip->daddr);
		e = fast_l4(&k, ip + 1, tot - sizeof(*ip), end);
		if (!e)
			return FAST_HAND_BACK;
		__builtin_memcpy(&ip->saddr, e->src + 12, 4);
		__builtin_memcpy(&ip->daddr, e->dst + 12, 4);
		ip->ttl--;
		ip->check = csum_apply(ip->check, e->ip_delta); /* addresses and TTL */
		return fast_send(ctx, e);
	}
	if (eth_proto == bswap16(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return FAST_HAND_BACK;
		if (ip6->version != 6 || ip6->hop_limit <= 1)
			return FAST_HAND_BACK;
		__u32 plen = bswap16(ip6->payload_len);
		if ((void *)(ip6 + 1) + plen > end)
			return FAST_HAND_BACK;
		k.proto = ip6->nexthdr; /* an extension header is neither TCP nor UDP: handed back */
		__builtin_memcpy(k.src, &ip6->saddr, 16);
		__builtin_memcpy(k.dst, &ip6->daddr, 16);
		e = fast_l4(&k, ip6 + 1, plen, end);
		if (!e)
			return FAST_HAND_BACK;
		__builtin_memcpy(&ip6->saddr, e->src, 16);
		__builtin_memcpy(&ip6->daddr, e->dst, 16);
		ip6->hop_limit--;
		return fast_send(ctx, e);
	}
	return FAST_HAND_BACK;
}

#endif

static __always_inline int redirect(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	int r = bpf_redirect_map(&xsks, q, XDP_PASS);
	if (r != XDP_PASS)
		return count(0, r);
	__u32 *h = bpf_map_lookup_elem(&held, &q);
	if (h && *h)
		return count(COUNT_HELD, XDP_DROP);
	return count(0, XDP_PASS);
}

/* The verdict for a SYN steer_l4 said to answer with a cookie. */
static __always_inline int cookie_verdict(struct xdp_md *ctx, __u32 l3off, int v4, const struct packet_addrs *a,
					  const struct cookie_job *job)
{
	int r = answer_with_cookie(ctx, l3off, v4, a, job);
	if (r > 0)
		return count(2, XDP_TX);
	if (r < 0)
		return XDP_DROP;
	return redirect(ctx);
}

SEC("xdp")
int sluice_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;
	struct packet_addrs a = {};
	struct cookie_job job = {};

	if ((void *)(eth + 1) > end)
		return count(1, XDP_PASS);
	if (other_host(eth))
		return count(1, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bswap16(ETH_P_8021Q_) && proto != bswap16(ETH_P_8021AD_))
			break;
		if (l3 + 4 > end)
			return count(1, XDP_PASS);
		proto = *(__u16 *)(l3 + 2);
		l3 += 4;
	}

#ifdef SLUICE_FAST_PATH
	int fast = fast_path(ctx, l3, proto);
	if (fast != FAST_HAND_BACK)
		return fast;
#endif

	int ours = 0;
	if (proto == bswap16(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return count(1, XDP_PASS);
		/* fragments are the kernel's business (the gateway does not reassemble) */
		if (ip->frag_off & bswap16(0x3fff))
			return count(1, XDP_PASS);
		mapped4(a.dst, &ip->daddr);
		mapped4(a.src, &ip->saddr);
		a.v4 = 1;
		ours = steer_l4(ctx, l3 + ip->ihl * 4, ip->protocol, &a, &job);
		if (ours == STEER_COOKIE && ip->ihl == 5)
			return cookie_verdict(ctx, l3 - data, 1, &a, &job);
	} else if (proto == bswap16(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return count(1, XDP_PASS);
		__builtin_memcpy(a.dst, &ip6->daddr, 16);
		__builtin_memcpy(a.src, &ip6->saddr, 16);
		void *l4 = ip6 + 1;
		if (ip6->nexthdr == IPPROTO_ICMPV6) {
			/* type(1) code(1) checksum(2) reserved(4) target(16) */
			__u8 *ic = l4;
			if ((void *)(ic + 24) > end)
				goto l4;
			if (ic[0] == ND_NEIGHBOR_SOLICIT_) {
				/* a solicitation for a VIP */
				__u8 *target = ic + 8;
				if ((void *)(target + 16) > end)
					return count(1, XDP_PASS);
				struct steer_key k = {};
				__builtin_memcpy(k.addr, target, 16);
				k.kind = KIND_OWNED;
				ours = lookup(&k);
				goto out;
			}
		}
	l4:
		ours = steer_l4(ctx, l4, ip6->nexthdr, &a, &job);
		if (ours == STEER_COOKIE && ip6->nexthdr == IPPROTO_TCP)
			return cookie_verdict(ctx, l3 - data, 0, &a, &job);
	} else if (proto == bswap16(ETH_P_ARP)) {
		/* Ethernet/IPv4 ARP requests for a VIP: htype(2) ptype(2) hlen plen op(2) sha(6) spa(4) tha(6) tpa(4) */
		__u8 *a = l3;
		if ((void *)(a + 28) > end)
			return count(1, XDP_PASS);
		if (a[6] == 0 && a[7] == ARPOP_REQUEST_) {
			struct steer_key k = {};
			mapped4(k.addr, a + 24);
			k.kind = KIND_OWNED;
			ours = lookup(&k);
		}
	}
out:
	if (!ours)
		return count(1, XDP_PASS);
	return redirect(ctx);
}

/* No GPL-only helper is used; the kernel reads this string for helper access only. */
char _license[] SEC("license") = "Dual MIT/GPL";
