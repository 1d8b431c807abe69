// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// The wire beyond a NIC, for the SYN-flood benchmark: attached by `Sandbox::sink_flood_replies`
// to the switch-side peer of the gateway's veth in place of `pass.c`. IPv4 frames addressed to
// 198.18.128.0/19 — the forged sources the flooders send from — are dropped here; everything
// else passes. On veth the peer's NAPI runs on the core that transmitted, the gateway's: without
// this every SYN-ACK to a forged source (Sluice's cookies, the kernel's answers) would also be
// turned into an skb, bridged and handed to the flooder's veth on the gateway's core, work a NIC
// leaves to the wire.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

#define SEC(name) __attribute__((section(name), used))

/// 198.18.128.0/19 in network byte order, compared under its mask.
#define SINK_NET 0xc6128000u
#define SINK_MASK 0xffffe000u

static inline unsigned int be32(unsigned int x)
{
	return __builtin_bswap32(x);
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	if ((be32(ip->daddr) & SINK_MASK) == SINK_NET)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
