// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// The ceiling of any XDP forwarder on an interface: swap the Ethernet addresses and send the
// frame back out where it came in (XDP_TX). Nothing is parsed beyond the Ethernet header, no map
// is read: what is left is the driver's receive, the program call and the XDP_TX transmit, which
// every XDP balancer (Katran, Cilium, Sluice's fast path) pays and then adds its own work to.
// `benches/run l4` measures it beside Sluice's fast path; nothing in the gateway loads it.

#include <linux/bpf.h>
#include <linux/if_ether.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int sluice_macswap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS; /* runt: the kernel's to count and drop */
	unsigned char tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

char _license[] SEC("license") = "Dual MIT/GPL";
