/* net.h: the network decision: destination address, port and protocol
 * against the network rules. The longest prefix of the policy that holds
 * the address (one hash lookup per prefix length in use, longest first)
 * carries every rule whose prefix holds it (the loader folds covering
 * prefixes into each entry), then at most AEGIS_NET_REFS rules are checked for protocol
 * and port. Free of hook specifics: bench.bpf.c times it on the host. */
#ifndef AEGIS_NET_H
#define AEGIS_NET_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "decide.h"

/* One destination to decide on. An IPv4-mapped IPv6 address is decided as
 * its IPv4 address (net_query_unmap). */
struct net_query {
	__u32 family; /* AF_INET or AF_INET6 */
	__u32 protocol;
	__u16 port; /* host byte order */
	__u16 _pad;
	__u8 addr[16]; /* IPv4: the first 4 bytes */
};

/* port_matches reports whether port is in one of r's ranges (all ports
 * when r has none). Bound: AEGIS_MAX_PORT_RANGES ranges. */
static __always_inline bool port_matches(const struct net_rule *r, __u16 port)
{
	__u32 n = r->nports;
	if (n == 0)
		return true;
	for (int i = 0; i < AEGIS_MAX_PORT_RANGES; i++) {
		if (i >= n)
			break;
		if (port >= r->ports[i].lo && port <= r->ports[i].hi)
			return true;
	}
	return false;
}

/* prefix_mask returns the network-order mask of the first bits bits of a
 * 32-bit word, bits in [0, 32]. */
static __always_inline __u32 prefix_mask(__u32 bits)
{
	if (bits == 0)
		return 0;
	return bpf_htonl(0xffffffffU << (32 - bits));
}

/* word_bits returns how many of the 32 bits of word w a prefix of length
 * len covers. */
static __always_inline __u32 word_bits(__u32 len, __u32 w)
{
	if (len <= 32 * w)
		return 0;
	len -= 32 * w;
	return len > 32 ? 32 : len;
}

/* net_lookup returns the entry of the longest prefix of the policy that
 * holds q's address: one hash lookup per prefix length present, longest
 * first, each in the map of its length. */
static __always_inline struct net_ref *net_lookup(const struct net_query *q)
{
	__u32 w[4];
	__builtin_memcpy(w, q->addr, 16);
	if (q->family == AF_INET) {
		for (int i = 0; i < AEGIS_NET4_LENS; i++) {
			if (i >= cfg_net4_nlens)
				break;
			__u32 len = cfg_net4_lens[i];
			void *m = bpf_map_lookup_elem(&net4_rules, &len);
			if (!m)
				continue;
			__u32 a = w[0] & prefix_mask(word_bits(len, 0));
			struct net_ref *r = bpf_map_lookup_elem(m, &a);
			if (r)
				return r;
		}
		return NULL;
	}
	for (int i = 0; i < AEGIS_NET6_LENS; i++) {
		if (i >= cfg_net6_nlens)
			break;
		__u32 len = cfg_net6_lens[i];
		void *m = bpf_map_lookup_elem(&net6_rules, &len);
		if (!m)
			continue;
		__u32 a[4];
		for (int j = 0; j < 4; j++)
			a[j] = w[j] & prefix_mask(word_bits(len, j));
		struct net_ref *r = bpf_map_lookup_elem(m, a);
		if (r)
			return r;
	}
	return NULL;
}

/* net_query_unmap turns an IPv4-mapped IPv6 destination (::ffff:a.b.c.d)
 * into the IPv4 one, so IPv4 rules hold for dual-stack sockets. */
static __always_inline void net_query_unmap(struct net_query *q)
{
	if (q->family != AF_INET6)
		return;
	__u32 w0, w1, w2;
	__builtin_memcpy(&w0, q->addr, 4);
	__builtin_memcpy(&w1, q->addr + 4, 4);
	__builtin_memcpy(&w2, q->addr + 8, 4);
	if (w0 != 0 || w1 != 0 || w2 != bpf_htonl(0x0000ffff))
		return;
	q->family = AF_INET;
	__builtin_memcpy(q->addr, q->addr + 12, 4);
	__builtin_memset(q->addr + 4, 0, 12);
}

/* decide_net returns the action for destination q, with *rule set to the
 * deciding rule index (AEGIS_NO_RULE if none). A global function: the
 * verifier checks it once per program; it returns the action, not the
 * verdict (see decide_protect). */
__noinline __u32 decide_net(struct net_query *q, __u32 *rule)
{
	if (!q || !rule)
		return AEGIS_ACTION_ALLOW;
	*rule = AEGIS_NO_RULE;
	struct net_ref *refs = net_lookup(q);
	if (!refs)
		return AEGIS_ACTION_ALLOW;
	struct match m = {};
	for (int i = 0; i < AEGIS_NET_REFS; i++) {
		__u32 ref = refs->ref[i];
		if (ref == 0)
			break;
		__u32 idx = ref - 1;
		struct net_rule *r = bpf_map_lookup_elem(&net_rules, &idx);
		if (!r)
			continue;
		if (r->protocol != 0 && r->protocol != q->protocol)
			continue;
		if (!port_matches(r, q->port))
			continue;
		if (consider(&m, ref))
			break;
	}
	if (m.ref == 0)
		return AEGIS_ACTION_ALLOW;
	*rule = m.ref - 1;
	return m.audit ? AEGIS_ACTION_AUDIT : AEGIS_ACTION_DENY;
}

#endif
