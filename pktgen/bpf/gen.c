// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// The kernel fast path of Sluice's packet generator and its counting sink.
//
// sluice_gen runs under BPF_PROG_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES, Linux
// >= 5.18): the kernel replays one template frame through it and transmits what it returns
// XDP_TX out of the given interface — the technique of xdp-trafficgen. Per packet it writes
// only the fields that vary and fixes checksums incrementally:
//   MODE_UDP   the UDP source port walks `flows` values from `port_base` (UDP checksum 0:
//              none, which IPv4 allows)
//   MODE_SYN   every frame a new TCP SYN. With `flows` and `ips` set: the source port walks
//              `flows` values from `port_base`, then the source address's low 16 bits walk `ips`
//              values from `ip_lo` (ips × flows sources, the template's high 16 bits kept).
//              Without them: the low 16 bits and the port follow a per-CPU sequence, so no
//              5-tuple repeats for 2^32 frames
// Frames persist between runs (page pool), so every fix is computed from the frame's current
// content, never from the template. A frame comes back to the pool as the whole path left it:
// a DUT that rewrites frames in place and sends them back with XDP_TX (an XDP NAT, Sluice's fast
// path) hands the generator its own rewrite. So MODE_UDP first copies the template's 42 bytes of
// Ethernet, IPv4 and UDP headers back (`tmpl`, set by user space) over the frame.
//
// sluice_sink, attached to the receiving interface, counts frames to `sink_port` (UDP, or TCP)
// and drops them; everything else goes to the kernel.
//
// sluice_pktgen_rx hands the AF_XDP socket of the receiving queue (pg_xsks) every UDP frame
// whose payload starts with pktgen's magic "SG", and every TCP SYN-ACK (IPv4 or IPv6): sluice-pktgen's
// receive side (measurements, and the handshakes it completes) and its reflector. Everything else
// goes to the kernel.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;

#define MODE_UDP 0
#define MODE_SYN 1

struct gen_cfg {
	__u32 mode;
	__u32 flows;
	__u16 port_base;
	__u16 sink_port;
	__u16 ips;
	__u16 ip_lo;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} cfg SEC(".maps");

/* The template's headers (MODE_UDP: Ethernet, IPv4 without options, UDP), as user space set them. */
#define UDP4_HDR_LEN 42
struct gen_tmpl {
	__u32 len; /* UDP4_HDR_LEN once set, 0 before */
	__u8 hdr[UDP4_HDR_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_tmpl);
} tmpl SEC(".maps");

/* [0] generated (per CPU), [1] sink counted, [2] sink passed */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} pg_xsks SEC(".maps");

static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

/* "SG" as the payload's first two bytes (read as a little-endian __u16). */
#define PKTGEN_MAGIC 0x4753

static __always_inline __u16 bswap16(__u16 x) { return (__u16)((x >> 8) | (x << 8)); }

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624: HC' = ~(~HC + ~m + m'), on 16-bit words in network order. */
static __always_inline void csum_replace2(__u16 *sum, __u16 old, __u16 new)
{
	__u32 s = (__u16)~*sum;
	s += (__u16)~old;
	s += new;
	*sum = ~fold(s);
}

static __always_inline __u64 *counter(__u32 i)
{
	return bpf_map_lookup_elem(&counts, &i);
}

SEC("xdp")
int sluice_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	__u64 *seq = counter(0);
	if (!c || !seq)
		return XDP_ABORTED;
	__u64 n = (*seq)++;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return XDP_ABORTED;
	if (c->mode == MODE_UDP) {
		struct udphdr *u = (void *)(ip + 1);
		if ((void *)(u + 1) > end)
			return XDP_ABORTED;
		struct gen_tmpl *t = bpf_map_lookup_elem(&tmpl, &zero);
		if (t && t->len == UDP4_HDR_LEN && data + UDP4_HDR_LEN <= end)
			__builtin_memcpy(data, t->hdr, UDP4_HDR_LEN);
		__u32 flows = c->flows ? c->flows : 1;
		u->source = bswap16((__u16)(c->port_base + n % flows));
		u->check = 0;
		return XDP_TX;
	}
	struct tcphdr *t = (void *)(ip + 1);
	if ((void *)(t + 1) > end)
		return XDP_ABORTED;
	/* The source address's low half and the port walk a 32-bit sequence together. */
	__u16 *saddr_lo = (__u16 *)&ip->saddr + 1;
	__u16 old_lo = *saddr_lo, new_lo, old_port = t->source, new_port;
	if (c->flows && c->ips) {
		new_port = bswap16((__u16)(c->port_base + n % c->flows));
		new_lo = bswap16((__u16)(c->ip_lo + (n / c->flows) % c->ips));
	} else {
		new_lo = bswap16((__u16)(n >> 16));
		new_port = bswap16((__u16)(1024 + (n & 0xffff) % 64000));
	}
	*saddr_lo = new_lo;
	t->source = new_port;
	__u16 ipsum = ip->check, tsum = t->check;
	csum_replace2(&ipsum, old_lo, new_lo);
	csum_replace2(&tsum, old_lo, new_lo); /* the pseudo-header carries the address */
	csum_replace2(&tsum, old_port, new_port);
	ip->check = ipsum;
	t->check = tsum;
	return XDP_TX;
}

SEC("xdp")
int sluice_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if (!c || (void *)(ip + 1) > end || eth->h_proto != bswap16(ETH_P_IP))
		goto pass;
	if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
		goto pass;
	struct udphdr *u = (void *)ip + ip->ihl * 4; /* ports first in both */
	if ((void *)(u + 1) > end || u->dest != bswap16(c->sink_port))
		goto pass;
	__u64 *k = counter(1);
	if (k)
		*k += 1;
	return XDP_DROP;
pass:;
	__u64 *p = counter(2);
	if (p)
		*p += 1;
	return XDP_PASS;
}

SEC("xdp")
int sluice_pktgen_rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	void *l4;
	__u8 proto;
	if (eth->h_proto == bswap16(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5)
			return XDP_PASS;
		proto = ip->protocol;
		l4 = (void *)(ip + 1);
	} else if (eth->h_proto == bswap16(ETH_P_IPV6)) {
		__u8 *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 40) > end)
			return XDP_PASS;
		proto = ip6[6];
		l4 = (void *)(ip6 + 40);
	} else {
		return XDP_PASS;
	}
	if (proto == IPPROTO_TCP) {
		/* SYN-ACKs answering pktgen's handshakes (flags byte: exactly SYN + ACK). */
		__u8 *t = l4;
		if ((void *)(t + 20) > end || (t[13] & 0x3f) != 0x12)
			return XDP_PASS;
		return bpf_redirect_map(&pg_xsks, ctx->rx_queue_index, XDP_PASS);
	}
	if (proto != IPPROTO_UDP)
		return XDP_PASS;
	struct udphdr *u = l4;
	__u16 *magic = (void *)(u + 1);
	if ((void *)(magic + 1) > end || *magic != PKTGEN_MAGIC)
		return XDP_PASS;
	return bpf_redirect_map(&pg_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
