/* Exec prevention (monitor.prevent_exec): every exec in the workload's mount namespace is
 * held by the kernel (fanotify FAN_OPEN_EXEC_PERM, mount marks) until tether answers. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* In the workload's process, in its final mount namespace, while it still holds
 * CAP_SYS_ADMIN: a fanotify group with a mark on every mount that allows exec (one that
 * cannot be marked is made noexec there; a covered one, which no path reaches, is passed
 * over).  The workload's own root, working directory and every descriptor it keeps across
 * exec must be on those mounts.  -1 with errno and *step on failure. */
int execgate_open(const char **step);
/* Before the confinement: memfd_create(2) fails with EPERM, since an exec from a memfd goes
 * through a mount no mark can reach. */
int execgate_no_memfd(void);
/* After the marks, in the workload's final mount namespace, while it still holds
 * CAP_SYS_ADMIN: no new user or mount namespace (unshare, clone; clone3 answers ENOSYS), whose
 * mounts would be copies without the marks, and no mount made, moved, cloned or unmounted.
 * 0, or -1 with errno. */
int execgate_no_unmarked_mounts(void);
/* After the marks, in the same process: every execve(2) and execveat(2) of the workload's
 * tree waits at its start until tether has seen it (a seccomp listener; uselib(2) fails with
 * EPERM).  That is how tether tells the file an exec starts with from the interpreter the
 * kernel then opens for it, which the held exec's events alone do not say.  The listener,
 * or -1 with errno. */
int execgate_exec_listener(void);
/* Takes one exec's start from the listener and lets it go on: the thread's id, or -1. */
pid_t execgate_exec_begins(int listener);
/* What a held file is to the kernel: not a native ELF (a script, or a binfmt_misc format),
 * an ELF that names an interpreter (PT_INTERP: the kernel opens it next, as its loader),
 * a dynamic loader (an ELF shared object with a soname and no interpreter of its own: run
 * as a program, it maps whatever program its arguments name, with no exec of that
 * program), or another ELF. */
enum elf_kind { ELF_NOT, ELF_WITH_INTERP, ELF_LOADER, ELF_OTHER };
enum elf_kind execgate_elf_kind(int fd);
/* The kernel denies writes to a held file only once its exec is past the open that tether
 * holds, so what tether reads could be rewritten before the kernel reads it, while it is
 * judged or after it is allowed.  A read lease holds it still: a writer's open counts as a
 * writer at once (the exec, when it gets that far, fails with ETXTBSY) and then waits until
 * the descriptor closes, which must be no sooner than the exec is past its open.  -1 with
 * errno when the file is open for writing now (EAGAIN), or its file system has no leases. */
int execgate_hold_still(int fd);
/* True while the lease holds, no writer having tried (or one that tried for longer than the
 * lease break time having taken it). */
bool execgate_held_still(int fd);
/* Refuses one held exec with errno err where the kernel can say so (ETXTBSY: what the
 * exec would have met anyway), else EPERM. */
void execgate_refuse(int gate_fd, int event_fd, int err);
/* Answers one held exec, and closes its descriptor. */
void execgate_answer(int gate_fd, int event_fd, bool allow);
/* Allows one held exec and keeps its descriptor, and the lease on it, open: the caller
 * closes it once the exec is past its open (see execgate_hold_still). */
void execgate_allow_held(int gate_fd, int event_fd);
/* A process that keeps the group open until the init (pidfd) has ended: the kernel allows
 * every held exec when the last descriptor of the group closes, so the group must outlive
 * the tree, not tether.  Returns its pid, or -1. */
pid_t execgate_hold(int gate_fd, int init_pidfd);
/* The same group for a process's mount namespace (a container's, from its init), its marks
 * made by a child that enters it (execgate_remark_in).  Returns the group, or -1 with err. */
struct tether_error;
int execgate_open_in(pid_t pid, struct tether_error **err);
/* In a child that enters the mount namespace of pid, marks its mounts in fan again (a mount
 * made since gets its mark; one marked already keeps it): 0, or -1 with err. */
int execgate_remark_in(pid_t pid, int fan, struct tether_error **err);
