/* protect.h: policy-driven protections (deny ptrace, deny module loading).
 * One decision per protection kind; events carry hook AEGIS_HOOK_PROTECT
 * and the kind in their access field. */
#ifndef AEGIS_PROTECT_H
#define AEGIS_PROTECT_H

#include "maps.h"
#include "decide.h"
#include "event.h"

/* enum kernel_read_file_id and enum kernel_load_data_id: READING_MODULE and
 * LOADING_MODULE are 2 in every kernel since 5.7. */
#define AEGIS_READING_MODULE 2
#define AEGIS_LOADING_MODULE 2

/* decide_protect folds the rules holding protection kind into an action
 * and reports it. A global function, verified once per program; it returns
 * the action, not the verdict, because the verifier sees a global
 * function's result as unbounded (the hook applies verdict()). */
__noinline __u32 decide_protect(__u32 kind)
{
	__u32 key = kind;
	struct protect_ref *p = bpf_map_lookup_elem(&protections, &key);
	if (!p)
		return AEGIS_ACTION_ALLOW;
	struct match m = {};
	for (int i = 0; i < AEGIS_PROTECT_REFS; i++) {
		if (p->ref[i] == 0 || consider(&m, p->ref[i]))
			break;
	}
	if (m.ref == 0)
		return AEGIS_ACTION_ALLOW;
	__u32 action = m.audit ? AEGIS_ACTION_AUDIT : AEGIS_ACTION_DENY;
	struct event *e = report(AEGIS_HOOK_PROTECT, action, kind, m.ref - 1);
	if (e)
		bpf_ringbuf_submit(e, 0);
	return action;
}

#endif
