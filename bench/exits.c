// The C baseline of the exit rows of `npm run bench` (bench/exits.mjs):
//   io N CODE        N port-I/O exits, the loop node-kvm's run() drives
//   mmio N CODE      N MMIO write exits, each byte checked
//   lifecycle N      N times: create VM + 1 MiB slot + vCPU, run to HLT, close
// Prints microseconds per exit (per lifecycle) as JSON.
#include "common.h"

// Microseconds per exit.
static double exits_us(const char *mode, unsigned long n, const char *code) {
  int mmio = strcmp(mode, "mmio") == 0;
  struct guest g;
  guest_open(&g, 0x10000, code, n);
  unsigned long seen = 0;
  double t0 = now_us();
  for (;;) {
    unsigned reason = run_once(&g);
    if (reason == KVM_EXIT_HLT) break;
    if (!mmio && reason == KVM_EXIT_IO && g.run->io.port == PORT) {
      seen++;
    } else if (mmio && reason == KVM_EXIT_MMIO && g.run->mmio.is_write) {
      if (g.run->mmio.phys_addr != MMIO_BASE + (seen & 0xffff) || g.run->mmio.data[0] != (seen & 0xff)) {
        fail(mode, "write", g.run->mmio.data[0], seen & 0xff);
      }
      seen++;
    } else {
      unexpected_exit(mode, reason);
    }
  }
  double us = now_us() - t0;
  if (seen != n) fail(mode, "exits", seen, n);
  munmap(g.run, g.run_size);
  close(g.vcpu);
  close(g.vm);
  close(g.kvm);
  munmap(g.mem, g.size);
  return us / n;
}

// With this set (bench/inproc.c, for bench/parts.mjs), lifecycle_us() adds
// each step's microseconds into it, in the order of lib's lifecycle: the
// memory, the hlt byte, the VM, the slot, the vCPU, sregs, regs, the run,
// closing the VM, unmapping the memory. The program leaves it null.
static double *lifecycle_steps;
#define STEP(k)                              \
  do {                                       \
    if (lifecycle_steps) {                   \
      double u_ = now_us();                  \
      lifecycle_steps[k] += u_ - t_;         \
      t_ = u_;                               \
    }                                        \
  } while (0)

// Microseconds per lifecycle; one /dev/kvm fd for all of them, as the
// node-kvm side keeps one Kvm open.
static double lifecycle_us(unsigned long n) {
  int kvm = open_kvm();
  int run_size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);
  size_t size = 1 << 20;
  double t0 = now_us();
  for (unsigned long i = 0; i < n; i++) {
    double t_ = lifecycle_steps ? now_us() : 0;
    unsigned char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    STEP(0);
    mem[GUEST_CODE] = 0xf4; // hlt
    STEP(1);
    int vm = xioctl(kvm, KVM_CREATE_VM, NULL);
    if (vm < 0) die("KVM_CREATE_VM");
    STEP(2);
    struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = size,
                                            .userspace_addr = (unsigned long)mem};
    if (xioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
    STEP(3);
    int vcpu = xioctl(vm, KVM_CREATE_VCPU, NULL);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");
    STEP(4);
    real_mode_sregs(vcpu);
    STEP(5);
    real_mode_regs(vcpu, 0);
    STEP(6);
    // As node-kvm's side runs again after an `intr` exit.
    if (xioctl(vcpu, KVM_RUN, NULL) < 0) die("KVM_RUN");
    if (run->exit_reason != KVM_EXIT_HLT) unexpected_exit("lifecycle", run->exit_reason);
    STEP(7);
    munmap(run, run_size);
    close(vcpu);
    close(vm);
    STEP(8);
    munmap(mem, size);
    STEP(9);
  }
  double us = (now_us() - t0) / n;
  close(kvm);
  return us;
}

// bench/inproc.c includes this file for the loops above, without main().
#ifndef BENCH_NO_MAIN
int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s io|mmio|lifecycle N [CODE]\n", argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  unsigned long n = strtoul(argv[2], NULL, 10);
  if (strcmp(mode, "lifecycle") == 0) {
    report(mode, n, lifecycle_us(n) * n);
  } else if ((strcmp(mode, "io") == 0 || strcmp(mode, "mmio") == 0) && argc > 3) {
    report(mode, n, exits_us(mode, n, argv[3]) * n);
  } else {
    fprintf(stderr, "%s: unknown mode %s (or CODE missing)\n", argv[0], mode);
    return 2;
  }
  return 0;
}
#endif
