// What the C baselines of `npm run bench` share: a real-mode guest built
// with the same ioctls node-kvm issues, timing, and the JSON they print.
// Each program is run as `bench-X MODE N [CODE]`: N operations of MODE,
// CODE the guest's bytes in hex (bench/guests.mjs, so that C and node-kvm
// run the very same guest), loaded at 0x1000 with rcx = N.
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_CODE 0x1000
// As in bench/guests.mjs: the port of every `out`, where MMIO stores land.
#define PORT 0x80
#define MMIO_BASE 0xd0000

static inline void die(const char *what) {
  perror(what);
  exit(1);
}

static inline void fail(const char *mode, const char *what, unsigned long got, unsigned long want) {
  fprintf(stderr, "%s: %s: got %lu, expected %lu\n", mode, what, got, want);
  exit(1);
}

static inline double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static inline void report(const char *mode, unsigned long n, double us_total) {
  printf("{\"mode\": \"%s\", \"n\": %lu, \"us\": %.4f}\n", mode, n, us_total / n);
}

struct guest {
  int kvm, vm, vcpu;
  unsigned char *mem;
  size_t size;
  struct kvm_run *run;
  int run_size;
};

// ioctl, retried on EINTR: inside a Node process (bench/inproc.c) io_uring
// task work can interrupt a system call with no signal delivered, and
// node-kvm retries those too.
static inline int xioctl(int fd, unsigned long request, void *arg) {
  int r;
  do r = ioctl(fd, request, arg);
  while (r < 0 && errno == EINTR);
  return r;
}

static inline int open_kvm(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  return kvm;
}

// Real mode at 0x1000 (cs base 0), as realModeGuest() and setupMode() do.
static inline void real_mode_sregs(int vcpu) {
  struct kvm_sregs s;
  if (xioctl(vcpu, KVM_GET_SREGS, &s) < 0) die("KVM_GET_SREGS");
  s.cs.base = 0;
  s.cs.selector = 0;
  if (xioctl(vcpu, KVM_SET_SREGS, &s) < 0) die("KVM_SET_SREGS");
}

static inline void real_mode_regs(int vcpu, unsigned long rcx) {
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = GUEST_CODE;
  regs.rflags = 2;
  regs.rcx = rcx;
  if (xioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
}

static inline void real_mode_at_code(int vcpu, unsigned long rcx) {
  real_mode_sregs(vcpu);
  real_mode_regs(vcpu, rcx);
}

static inline void load_hex(unsigned char *to, size_t room, const char *hex) {
  size_t n = strlen(hex) / 2;
  if (n > room) die("guest code too long");
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) die("guest code is not hex");
    to[i] = v;
  }
}

// A VM with `size` bytes of RAM at 0 holding `hex` at 0x1000, and one vCPU
// about to run it with rcx = n.
static inline void guest_open(struct guest *g, size_t size, const char *hex, unsigned long n) {
  g->kvm = open_kvm();
  g->vm = xioctl(g->kvm, KVM_CREATE_VM, NULL);
  if (g->vm < 0) die("KVM_CREATE_VM");
  g->size = size;
  g->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (g->mem == MAP_FAILED) die("mmap");
  load_hex(g->mem + GUEST_CODE, size - GUEST_CODE, hex);
  struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = size,
                                          .userspace_addr = (unsigned long)g->mem};
  if (xioctl(g->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
  g->vcpu = xioctl(g->vm, KVM_CREATE_VCPU, NULL);
  if (g->vcpu < 0) die("KVM_CREATE_VCPU");
  g->run_size = xioctl(g->kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);
  g->run = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu, 0);
  if (g->run == MAP_FAILED) die("mmap kvm_run");
  real_mode_at_code(g->vcpu, n);
}

// KVM_RUN, retried on EINTR (node-kvm's run() reports it as an `intr` exit).
static inline unsigned run_once(struct guest *g) {
  while (ioctl(g->vcpu, KVM_RUN, 0) < 0) {
    if (errno != EINTR) die("KVM_RUN");
  }
  return g->run->exit_reason;
}

static inline void unexpected_exit(const char *mode, unsigned reason) {
  fprintf(stderr, "%s: unexpected exit %u\n", mode, reason);
  exit(1);
}

#endif
