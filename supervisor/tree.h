/* A workload's process tree as the kernel knows it: by pid namespace where it has one of its
 * own, else by descent.  Both are read from /proc, without a depth limit. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A process's parent, from /proc/PID/stat, or -1. */
pid_t tree_ppid(pid_t pid);
/* True when pid descends from top (not when it is top), by its chain of parents.  The answer
 * for each process on the chain is remembered in *memo (made at the first call; free it
 * with free), by pid and start time, so a process is walked up from once, not at every
 * exec of its descendants: a chain thousands deep costs its depth once, then a step.  Valid
 * while orphans go to top or above it, never from outside the tree into it. */
struct tree_memo;
bool tree_descends(struct tree_memo **memo, pid_t pid, pid_t top);
/* Every descendant of root (not root itself), breadth first.  Returns the count. */
size_t tree_descendants(pid_t root, pid_t **out);
/* The inode of a process's pid namespace, or 0. */
uint64_t tree_pidns(pid_t pid);
/* True when pid lives in the pid namespace ns, or in one nested in it. */
bool tree_pidns_within(pid_t pid, uint64_t ns);
/* Every process in ns and the namespaces nested in it, but `except`.  Returns the count. */
size_t tree_pidns_members(uint64_t ns, pid_t except, pid_t **out);
/* SIGKILL through cgroup.kill to every cgroup (v2) whose members are all among pids: what a
 * container runtime moved out of the workload's own cgroup dies with the rest, and nothing
 * else does. */
void tree_kill_cgroups(const pid_t *pids, size_t n);
