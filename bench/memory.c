// The C baseline of the memory rows of `npm run bench` (bench/memory.mjs):
//   dirty N    N KVM_GET_DIRTY_LOG of a clean 1 GiB slot into one bitmap
//   slot4g N   N times: mmap 4 GiB, register it as a slot, delete it, munmap
// Prints microseconds per operation as JSON.
#include "common.h"

static void dirty(unsigned long n) {
  int kvm = open_kvm();
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  size_t gib = 1ul << 30;
  void *mem = mmap(NULL, gib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  struct kvm_userspace_memory_region r = {.slot = 0, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = 0,
                                          .memory_size = gib, .userspace_addr = (unsigned long)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
  static unsigned char bitmap[(1ul << 30) / 4096 / 8];
  struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = bitmap};
  double t0 = now_us();
  for (unsigned long i = 0; i < n; i++) {
    if (ioctl(vm, KVM_GET_DIRTY_LOG, &log) < 0) die("KVM_GET_DIRTY_LOG");
  }
  double us = now_us() - t0;
  for (size_t i = 0; i < sizeof bitmap; i++) {
    if (bitmap[i] != 0) fail("dirty", "dirty bitmap byte", bitmap[i], 0);
  }
  report("dirty", n, us);
}

static void slot4g(unsigned long n) {
  int kvm = open_kvm();
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  size_t big = 4ul << 30;
  double t0 = now_us();
  for (unsigned long i = 0; i < n; i++) {
    void *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    struct kvm_userspace_memory_region s = {.slot = 1, .guest_phys_addr = 1ul << 32, .memory_size = big,
                                            .userspace_addr = (unsigned long)p};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &s) < 0) die("KVM_SET_USER_MEMORY_REGION 4 GiB");
    s.memory_size = 0;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &s) < 0) die("delete");
    munmap(p, big);
  }
  report("slot4g", n, now_us() - t0);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s dirty|slot4g N\n", argv[0]);
    return 2;
  }
  unsigned long n = strtoul(argv[2], NULL, 10);
  if (strcmp(argv[1], "dirty") == 0) {
    dirty(n);
  } else if (strcmp(argv[1], "slot4g") == 0) {
    slot4g(n);
  } else {
    fprintf(stderr, "%s: unknown mode %s\n", argv[0], argv[1]);
    return 2;
  }
  return 0;
}
