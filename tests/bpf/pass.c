// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// XDP_PASS, nothing else: attached by the sandbox to the switch-side peer of each gateway veth.
// A veth whose XDP program transmits with XDP_TX hands the frames to its peer's ring, and the
// kernel (6.18) schedules the peer's NAPI to take them only when the peer has an XDP program of
// its own: NAPI through GRO alone fills the ring and never drains it, and the link stops passing
// anything (docs/af-xdp.md, pitfall 3).

#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
