// SPDX-License-Identifier: Apache-2.0 OR MIT
//
// XDP_DROP, nothing else: for a generator's interface that must not spend its core on what
// comes back (a SYN flood's SYN-ACKs), attached by `Sandbox::drop_ingress`.

#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual MIT/GPL";
