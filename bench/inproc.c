// bench/exits.c's io and lifecycle loops as a Node-API module, for
// bench/parts.mjs: the same C, but inside the Node process, so that what the
// process itself costs (its threads, mappings, caches) is told apart from
// what node-kvm's layers cost.
#include <node_api.h>

#include "common.h"

static double io_us(unsigned long n, const char *hex) {
  struct guest g;
  guest_open(&g, 1 << 16, hex, n);
  unsigned long seen = 0;
  double t0 = now_us();
  for (;;) {
    unsigned reason = run_once(&g);
    if (reason == KVM_EXIT_IO) seen++;
    else if (reason == KVM_EXIT_HLT) break;
    else unexpected_exit("io", reason);
  }
  double us = (now_us() - t0) / n;
  if (seen != n) fail("io", "exits", seen, n);
  munmap(g.run, g.run_size);
  close(g.vcpu);
  close(g.vm);
  close(g.kvm);
  munmap(g.mem, g.size);
  return us;
}

static double lifecycle_us(unsigned long n) {
  int kvm = open_kvm();
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  size_t size = 1 << 20;
  double t0 = now_us();
  for (unsigned long i = 0; i < n; i++) {
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    unsigned char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    mem[GUEST_CODE] = 0xf4;  // hlt
    struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = size,
                                            .userspace_addr = (unsigned long)mem};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");
    real_mode_at_code(vcpu, 0);
    if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
    if (run->exit_reason != KVM_EXIT_HLT) unexpected_exit("lifecycle", run->exit_reason);
    munmap(run, run_size);
    close(vcpu);
    close(vm);
    munmap(mem, size);
  }
  double us = (now_us() - t0) / n;
  close(kvm);
  return us;
}

// io(n, hex) and lifecycle(n): microseconds per operation.
static napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *which;
  napi_get_cb_info(env, info, &argc, argv, NULL, &which);
  int64_t n = 0;
  napi_get_value_int64(env, argv[0], &n);
  double us;
  if (which == (void *)1) {
    char hex[256] = {0};
    size_t len = 0;
    napi_get_value_string_utf8(env, argv[1], hex, sizeof hex, &len);
    us = io_us((unsigned long)n, hex);
  } else {
    us = lifecycle_us((unsigned long)n);
  }
  napi_value out;
  napi_create_double(env, us, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "io", NAPI_AUTO_LENGTH, Run, (void *)1, &fn);
  napi_set_named_property(env, exports, "io", fn);
  napi_create_function(env, "lifecycle", NAPI_AUTO_LENGTH, Run, (void *)2, &fn);
  napi_set_named_property(env, exports, "lifecycle", fn);
  return exports;
}
