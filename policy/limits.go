package policy

// Capacity limits of a policy. The kernel engine sizes its BPF maps from
// these constants, so a policy that passes Parse always fits. Counts are of
// map entries (targets), not of rules, except where named otherwise.
const (
	// MaxFileTargets bounds file rule targets: exact paths, subtrees and
	// dev:inode entries of every file rule, all together.
	MaxFileTargets = 262144
	// MaxExecTargets bounds exec rule targets (exact paths and subtrees).
	MaxExecTargets = 65536
	// MaxCIDRsPerFamily bounds network CIDR entries, separately for IPv4
	// and IPv6 (after IPv4-mapped IPv6 prefixes are folded into IPv4).
	MaxCIDRsPerFamily = 65536
	// MaxCgroups bounds the distinct cgroup paths named in rule scopes
	// (cgroups and exempt_cgroups together).
	MaxCgroups = 1024
	// MaxPortRanges bounds the port ranges of one network rule, after
	// overlapping and adjacent ranges are merged.
	MaxPortRanges = 16
	// MaxProtectRules bounds the number of protect rules.
	MaxProtectRules = 1024
	// MaxRules bounds the number of rules of every kind together, so a
	// rule's dense index is below it. It follows from the other limits:
	// every rule but a protect rule has at least one target.
	MaxRules = MaxFileTargets + MaxExecTargets + 2*MaxCIDRsPerFamily + MaxProtectRules

	// MaxIDLen is the longest rule id, in bytes.
	MaxIDLen = 64
	// MaxNameLen is the longest policy name, in bytes.
	MaxNameLen = 128
	// MaxPathLen is the longest path (PATH_MAX less the NUL).
	MaxPathLen = 4095
	// MaxComponentLen is the longest path component (NAME_MAX).
	MaxComponentLen = 255
	// MaxCgroupDepth and MaxCgroupNameLen bound the cgroup paths of scopes:
	// the kernel side matches them by walking and hashing the names of a
	// task's cgroup and its ancestors (AEGIS_SCOPE_DEPTH, and
	// AEGIS_CGROUP_NAME_MAX less the NUL and one byte to see a name end).
	MaxCgroupDepth   = 32
	MaxCgroupNameLen = 126
	// MaxPID is the largest PID the kernel hands out (PID_MAX_LIMIT).
	MaxPID = 4194304
	// MaxFileSize is the largest policy file ReadFile accepts.
	MaxFileSize = 64 << 20

	// Version is the only policy format version this package understands.
	Version = 1
)
