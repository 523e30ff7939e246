// The C baseline of the fast-path rows of `npm run bench` (bench/fastpaths.mjs):
//   regs N CODE        N port-I/O exits, rbx += 1 at each by KVM_GET_REGS + KVM_SET_REGS
//   syncregs N CODE    the same through kvm_run (KVM_CAP_SYNC_REGS)
//   coalesced N CODE   N MMIO writes into a coalesced zone, drained from the ring
//   ioeventfd N CODE   N doorbell `out`s signalling an eventfd, no exit each
// Prints microseconds per exit, write or doorbell as JSON.
#include <sys/eventfd.h>
#include "common.h"

static void registers(const char *mode, unsigned long n, const char *code) {
  int sync = strcmp(mode, "syncregs") == 0;
  struct guest g;
  guest_open(&g, 0x10000, code, n);
  if (sync) {
    if ((ioctl(g.vm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS) == 0) die("KVM_CAP_SYNC_REGS");
    g.run->kvm_valid_regs = KVM_SYNC_X86_REGS;
  }
  unsigned long exits = 0;
  struct kvm_regs regs;
  double t0 = now_us();
  for (;;) {
    unsigned reason = run_once(&g);
    if (reason == KVM_EXIT_HLT) break;
    if (reason != KVM_EXIT_IO || g.run->io.port != PORT) unexpected_exit(mode, reason);
    exits++;
    if (sync) {
      g.run->s.regs.regs.rbx++;
      g.run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
    } else {
      if (ioctl(g.vcpu, KVM_GET_REGS, &regs) < 0) die("KVM_GET_REGS");
      regs.rbx++;
      if (ioctl(g.vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
    }
  }
  double us = now_us() - t0;
  if (exits != n) fail(mode, "exits", exits, n);
  if (ioctl(g.vcpu, KVM_GET_REGS, &regs) < 0) die("KVM_GET_REGS");
  if (regs.rbx != n) fail(mode, "rbx", regs.rbx, n);
  report(mode, n, us);
}

// Checks the i-th write of the burst: byte i & 0xff at MMIO_BASE + (i & 0xffff).
static void check_write(unsigned long i, unsigned long long addr, unsigned char byte) {
  if (addr != MMIO_BASE + (i & 0xffff) || byte != (i & 0xff)) fail("coalesced", "write", byte, i & 0xff);
}

static void coalesced(unsigned long n, const char *code) {
  struct guest g;
  guest_open(&g, 0x10000, code, n);
  struct kvm_coalesced_mmio_zone zone = {.addr = MMIO_BASE, .size = 0x10000};
  if (ioctl(g.vm, KVM_REGISTER_COALESCED_MMIO, &zone) < 0) die("KVM_REGISTER_COALESCED_MMIO");
  long page = sysconf(_SC_PAGESIZE);
  struct kvm_coalesced_mmio_ring *ring = (void *)((char *)g.run + KVM_COALESCED_MMIO_PAGE_OFFSET * page);
  unsigned max = (page - sizeof *ring) / sizeof ring->coalesced_mmio[0];
  unsigned long writes = 0, exits = 0;
  double t0 = now_us();
  for (;;) {
    unsigned reason = run_once(&g);
    exits++;
    // The queued writes came first: drain them before the exit's own.
    unsigned last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
    unsigned first = ring->first;
    while (first != last) {
      struct kvm_coalesced_mmio *e = &ring->coalesced_mmio[first];
      check_write(writes++, e->phys_addr, e->data[0]);
      first = (first + 1) % max;
    }
    __atomic_store_n(&ring->first, first, __ATOMIC_RELEASE);
    if (reason == KVM_EXIT_HLT) break;
    if (reason != KVM_EXIT_MMIO || !g.run->mmio.is_write) unexpected_exit("coalesced", reason);
    check_write(writes++, g.run->mmio.phys_addr, g.run->mmio.data[0]); // the ring was full
  }
  double us = now_us() - t0;
  if (writes != n) fail("coalesced", "writes", writes, n);
  if (exits > n / (max - 1) + 2) fail("coalesced", "exits", exits, n / (max - 1) + 2);
  report("coalesced", n, us);
}

static void doorbells(unsigned long n, const char *code) {
  struct guest g;
  guest_open(&g, 0x10000, code, n);
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) die("eventfd");
  struct kvm_ioeventfd io = {.addr = PORT, .len = 1, .fd = efd, .flags = KVM_IOEVENTFD_FLAG_PIO};
  if (ioctl(g.vm, KVM_IOEVENTFD, &io) < 0) die("KVM_IOEVENTFD");
  double t0 = now_us();
  unsigned reason = run_once(&g);
  double us = now_us() - t0;
  if (reason != KVM_EXIT_HLT) unexpected_exit("ioeventfd", reason);
  unsigned long long count = 0;
  if (read(efd, &count, sizeof count) != sizeof count) die("read eventfd");
  if (count != n) fail("ioeventfd", "eventfd count", count, n);
  report("ioeventfd", n, us);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s regs|syncregs|coalesced|ioeventfd N CODE\n", argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  unsigned long n = strtoul(argv[2], NULL, 10);
  if (strcmp(mode, "regs") == 0 || strcmp(mode, "syncregs") == 0) {
    registers(mode, n, argv[3]);
  } else if (strcmp(mode, "coalesced") == 0) {
    coalesced(n, argv[3]);
  } else if (strcmp(mode, "ioeventfd") == 0) {
    doorbells(n, argv[3]);
  } else {
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], mode);
    return 2;
  }
  return 0;
}
