package bpf

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu" -type inode_key -type name_key -type rule_ref -type rule_info -type scope_key -type rule_counter -type protect_ref -type net_ref -type net_rule -type port_range -type agent_id -type obj_key -type event Aegis aegis.bpf.c
