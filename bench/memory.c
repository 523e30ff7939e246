// The baseline for the memory rows of `npm run bench`: the same ioctls as
// node-kvm in plain C. Prints JSON: microseconds per KVM_GET_DIRTY_LOG of a
// clean 1 GiB slot, and per allocate + register + delete + free of 4 GiB.
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");

  size_t gib = 1ul << 30;
  void *mem = mmap(NULL, gib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  struct kvm_userspace_memory_region r = {.slot = 0, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = 0,
                                          .memory_size = gib, .userspace_addr = (unsigned long)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
  static unsigned char bitmap[(1ul << 30) / 4096 / 8];
  struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = bitmap};
  double t0 = now_us();
  for (unsigned long i = 0; i < n; i++) {
    if (ioctl(vm, KVM_GET_DIRTY_LOG, &log) < 0) die("KVM_GET_DIRTY_LOG");
  }
  double dirty = (now_us() - t0) / n;

  size_t big = 4ul << 30;
  unsigned long m = n / 100 + 5;
  t0 = now_us();
  for (unsigned long i = 0; i < m; i++) {
    void *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    struct kvm_userspace_memory_region s = {.slot = 1, .guest_phys_addr = 1ul << 32, .memory_size = big,
                                            .userspace_addr = (unsigned long)p};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &s) < 0) die("KVM_SET_USER_MEMORY_REGION 4 GiB");
    s.memory_size = 0;
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &s) < 0) die("delete");
    munmap(p, big);
  }
  double slot = (now_us() - t0) / m;
  printf("{\"dirtyLogUs\": %.3f, \"slot4gUs\": %.3f}\n", dirty, slot);
  return 0;
}
