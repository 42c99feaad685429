// SPDX-License-Identifier: LGPL-2.1-or-later OR BSD-2-Clause
/*
 * crmonban's XDP fast path: drops a packet whose source address is banned, before the kernel
 * allocates anything for it; everything else passes on to the network stack (and crmonban's
 * nftables sets, which hold the same bans).
 *
 * Maps (the layout other programs read from the pinned files, docs/EBPF.md), as nftables:
 *   blocked_v4      hash, key u8[4] (the address, network byte order): single addresses
 *   blocked_v6      hash, key u8[16]
 *   blocked_v4_net  LPM trie, key { u32 prefixlen; u8 addr[4] }: networks (CIDR bans)
 *   blocked_v6_net  LPM trie, key { u32 prefixlen; u8 addr[16] }
 *                   value (all four) { u64 expires_ns }: CLOCK_MONOTONIC nanoseconds after
 *                   which the entry counts as absent (read with bpf_ktime_get_coarse_ns, a
 *                   tick's resolution), 0 for a permanent ban. Expiry is decided here, per
 *                   packet, so it never waits for user space.
 *   drops           per-CPU array of 2 { u64 packets; u64 bytes; }: index 0 IPv4, 1 IPv6.
 *
 * A single address is looked up in its hash map first (constant time at any size: a trie of
 * a million /32s is ~20 nodes deep), then in the networks' trie.
 *
 * Parses up to two 802.1Q / 802.1ad VLAN tags in front of the IP header (QinQ). Every loop is
 * bounded and unrolled; every read is checked against data_end.
 *
 * Built by `cargo xtask bpf` (clang -target bpf), which also writes the libbpf-rs skeleton.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Up to this many VLAN tags are skipped (802.1ad outer + 802.1Q inner). */
#define MAX_VLAN_TAGS 2

struct v4_net_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct v6_net_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct v4_addr {
	__u8 addr[4];
};

struct v6_addr {
	__u8 addr[16];
};

struct ban_value {
	__u64 expires_ns;
};

struct drop_counters {
	__u64 packets;
	__u64 bytes;
};

struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* max_entries is set by the loader from `[ebpf] max_entries` before the maps are created;
 * no map preallocates, so memory follows the bans, not the capacity. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct v4_addr);
	__type(value, struct ban_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10000);
} blocked_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct v6_addr);
	__type(value, struct ban_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10000);
} blocked_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct v4_net_key);
	__type(value, struct ban_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10000);
} blocked_v4_net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct v6_net_key);
	__type(value, struct ban_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10000);
} blocked_v6_net SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct drop_counters);
	__uint(max_entries, 2);
} drops SEC(".maps");

/* Drops the packet when `ban` is an entry in force; counts it under `family_index`. */
static __always_inline int verdict(const struct ban_value *ban, __u32 family_index, __u64 bytes)
{
	if (!ban)
		return XDP_PASS;
	if (ban->expires_ns != 0 && bpf_ktime_get_coarse_ns() >= ban->expires_ns)
		return XDP_PASS;
	struct drop_counters *counters = bpf_map_lookup_elem(&drops, &family_index);
	if (counters) {
		counters->packets += 1;
		counters->bytes += bytes;
	}
	return XDP_DROP;
}

SEC("xdp")
int crmonban_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = data_end - data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	__be16 proto = eth->h_proto;
	void *cursor = eth + 1;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_tag *tag = cursor;
		if ((void *)(tag + 1) > data_end)
			return XDP_PASS;
		proto = tag->encapsulated_proto;
		cursor = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor;
		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		struct v4_addr addr;
		__builtin_memcpy(addr.addr, &ip->saddr, sizeof(addr.addr));
		struct ban_value *ban = bpf_map_lookup_elem(&blocked_v4, &addr);
		if (!ban) {
			struct v4_net_key key = { .prefixlen = 32 };
			__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
			ban = bpf_map_lookup_elem(&blocked_v4_net, &key);
		}
		return verdict(ban, 0, bytes);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor;
		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		struct v6_addr addr;
		__builtin_memcpy(addr.addr, &ip6->saddr, sizeof(addr.addr));
		struct ban_value *ban = bpf_map_lookup_elem(&blocked_v6, &addr);
		if (!ban) {
			struct v6_net_key key = { .prefixlen = 128 };
			__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
			ban = bpf_map_lookup_elem(&blocked_v6_net, &key);
		}
		return verdict(ban, 1, bytes);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
