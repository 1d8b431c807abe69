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
// Frames redirected while no socket is bound to the queue fall back to XDP_PASS.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct steer_key);
	__type(value, struct steer_value);
} steer SEC(".maps");

/* Per-CPU counters: [0] redirected, [1] passed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

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

/* Decides for an L4 header at `l4` with destination `dst` and source `src` (both 16 bytes). */
static __always_inline int steer_l4(struct xdp_md *ctx, void *l4, void *end, __u8 proto,
				    const struct packet_addrs *a)
{
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
	if (lookup(&k))
		return 1;
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

SEC("xdp")
int sluice_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;
	struct packet_addrs a = {};

	if ((void *)(eth + 1) > end)
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
		ours = steer_l4(ctx, l3 + ip->ihl * 4, end, ip->protocol, &a);
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
		ours = steer_l4(ctx, l4, end, ip6->nexthdr, &a);
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
	count(0, 0);
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

/* No GPL-only helper is used; the kernel reads this string for helper access only. */
char _license[] SEC("license") = "Dual MIT/GPL";
