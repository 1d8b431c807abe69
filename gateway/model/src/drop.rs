//! Every reason a frame is dropped, written once. Each has a per-worker counter (see
//! [`crate::counters`]); nothing is dropped silently.

named! {
    /// Why a frame was dropped.
    pub enum DropReason {
        /// Shorter than an Ethernet header.
        TruncatedEthernet => "truncated_ethernet",
        /// More VLAN tags than we walk, or a tag cut short.
        BadVlan => "bad_vlan",
        /// An EtherType that is neither IPv4, IPv6 nor ARP.
        UnknownEthertype => "unknown_ethertype",
        /// An ARP packet that is not Ethernet/IPv4 or is cut short.
        MalformedArp => "malformed_arp",
        /// Shorter than an IPv4 header.
        TruncatedIpv4 => "truncated_ipv4",
        /// IP version field disagrees with the EtherType.
        BadIpVersion => "bad_ip_version",
        /// IHL below 5 or beyond the frame.
        BadIpv4HeaderLen => "bad_ipv4_header_len",
        /// IPv4 total length beyond the frame or below the header.
        BadIpv4Length => "bad_ipv4_length",
        /// An IPv4 fragment (not reassembled; see the crate documentation).
        Ipv4Fragment => "ipv4_fragment",
        /// Shorter than an IPv6 header.
        TruncatedIpv6 => "truncated_ipv6",
        /// IPv6 payload length beyond the frame, or an extension header beyond it.
        BadIpv6Length => "bad_ipv6_length",
        /// An IPv6 extension-header chain longer than we walk.
        Ipv6ExtensionChain => "ipv6_extension_chain",
        /// An IPv6 fragment.
        Ipv6Fragment => "ipv6_fragment",
        /// Shorter than a TCP header.
        TruncatedTcp => "truncated_tcp",
        /// TCP data offset below 5 or beyond the segment.
        BadTcpHeaderLen => "bad_tcp_header_len",
        /// Shorter than a UDP header.
        TruncatedUdp => "truncated_udp",
        /// UDP length field below 8 or beyond the datagram.
        BadUdpLength => "bad_udp_length",
        /// Shorter than an ICMP header.
        TruncatedIcmp => "truncated_icmp",
        /// TTL or hop limit would reach zero.
        TtlExceeded => "ttl_exceeded",
        /// A protocol other than TCP, UDP or ICMP sent to a service address.
        UnsupportedProtocol => "unsupported_protocol",
        /// The service has no endpoint that may take a new flow.
        NoBackend => "no_backend",
        /// A UDP datagram from a backend whose flow was ended because the backend left the service.
        BackendGone => "backend_gone",
        /// A TCP segment other than SYN with no flow, on a service that cannot adopt it.
        NoFlowForSegment => "no_flow_for_segment",
        /// No free SNAT port for this backend on any SNAT address of the service.
        SnatExhausted => "snat_exhausted",
        /// The reverse tuple of a new DNAT flow is already taken.
        NatTupleConflict => "nat_tuple_conflict",
        /// An ICMP error about a packet of no tracked flow, sent to a service address.
        IcmpErrorNoFlow => "icmp_error_no_flow",
        /// An ICMP error whose quoted packet cannot be read.
        IcmpErrorMalformed => "icmp_error_malformed",
        /// No MAC address is known yet for the next hop (resolution has been requested).
        NeighborUnresolved => "neighbor_unresolved",
        /// The transmit ring had no room.
        TxRingFull => "tx_ring_full",
        /// The kernel-bound path had no room.
        KernelPathFull => "kernel_path_full",
        /// The worker that owns the frame's flow had no free parcel (or the frame was too large).
        HandoffFull => "handoff_full",
        /// A frame to copy into another port, or handed over by another worker, found no free frame.
        NoFrame => "no_frame",
        /// A TCP RST or FIN outside the receiver's window (forged or stale: it would close the flow).
        TcpOutOfWindow => "tcp_out_of_window",
        /// A client segment of a connection opened through a SYN cookie that its backend had not answered in time (or one with nothing to hold).
        SynProxyPending => "syn_proxy_pending",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_dense() {
        let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
