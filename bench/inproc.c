// bench/exits.c's loops as a Node-API module, for bench/parts.mjs: the same
// C, run inside the Node process, so that what the process itself costs
// (its threads, mappings, caches) is told apart from what node-kvm's layers
// cost.
#include <node_api.h>
#include <stdbool.h>

#define BENCH_NO_MAIN
#include "exits.c"

// io(n, code), mmio(n, code) and lifecycle(n, steps?): microseconds per
// operation; with
// steps (a Float64Array of 10) the lifecycle adds each step's time into it.
static napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *which;
  napi_get_cb_info(env, info, &argc, argv, NULL, &which);
  int64_t n = 0;
  napi_get_value_int64(env, argv[0], &n);
  double us;
  if (which == (void *)1 || which == (void *)3) {
    char code[256] = {0};
    size_t len = 0;
    napi_get_value_string_utf8(env, argv[1], code, sizeof code, &len);
    us = exits_us(which == (void *)1 ? "io" : "mmio", (unsigned long)n, code);
  } else {
    void *steps = NULL;
    bool isTyped = false;
    if (argc > 1 && napi_is_typedarray(env, argv[1], &isTyped) == napi_ok && isTyped) {
      napi_typedarray_type type;
      size_t length;
      napi_get_typedarray_info(env, argv[1], &type, &length, &steps, NULL, NULL);
      if (type != napi_float64_array || length < 10) steps = NULL;
    }
    lifecycle_steps = steps;
    us = lifecycle_us((unsigned long)n);
    lifecycle_steps = NULL;
  }
  napi_value out;
  napi_create_double(env, us, &out);
  return out;
}

// kvmRun(fd): one KVM_RUN per call, its result as a number: the least any
// Node binding does per exit (no checks, no kick, no time-out); the caller
// reads the exit from its own view of kvm_run.
#include <x86intrin.h>
static unsigned long long gapSum, gapN, gapLast;
static napi_value Gap(napi_env env, napi_callback_info info) { napi_value o; napi_create_double(env, gapN ? (double)gapSum / gapN : 0, &o); (void)info; return o; }
static napi_value KvmRun(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  int r;
  { unsigned long long t=__rdtsc(); if (gapLast && t-gapLast < 1000000) { gapSum += t-gapLast; gapN++; } }
  while ((r = ioctl(fd, KVM_RUN, 0)) < 0 && errno == EINTR) {}
  gapLast = __rdtsc();
  napi_value out;
  napi_create_int32(env, r, &out);
  return out;
}

// The least any Node binding does for the VM's life, one call per step
// of exits.c's lifecycle and no checks: lc.memory(size) maps the memory and
// gives it to JavaScript as an ArrayBuffer (JS writes the hlt byte through
// it), lc.vm(), lc.slot(vm, buffer), lc.vcpu(vm), lc.sregs(vcpu),
// lc.regs(vcpu), lc.run(vcpu) (the exit reason), lc.close(vm, vcpu), and
// lc.free(buffer), which detaches the buffer and unmaps the memory. One
// vCPU at a time.
static struct kvm_run *lcRun_;
static int lcRunSize_, lcKvm_ = -1;
static int32_t arg_int(napi_env env, napi_callback_info info, size_t i) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t v = -1;
  napi_get_value_int32(env, argv[i], &v);
  return v;
}
static napi_value int_value(napi_env env, int32_t v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}
static void *arraybuffer_arg(napi_env env, napi_callback_info info, size_t i, napi_value *ab, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  *ab = argv[i];
  napi_get_arraybuffer_info(env, argv[i], &data, len);
  return data;
}
static void lc_no_finalize(napi_env env, void *data, void *hint) { (void)env, (void)data, (void)hint; }
static napi_value LcMemory(napi_env env, napi_callback_info info) {
  size_t size = (size_t)arg_int(env, info, 0);
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  napi_value ab;
  napi_create_external_arraybuffer(env, mem, size, lc_no_finalize, NULL, &ab);
  return ab;
}
static napi_value LcVm(napi_env env, napi_callback_info info) {
  (void)info;
  if (lcKvm_ < 0) {
    lcKvm_ = open_kvm();
    lcRunSize_ = xioctl(lcKvm_, KVM_GET_VCPU_MMAP_SIZE, NULL);
  }
  return int_value(env, xioctl(lcKvm_, KVM_CREATE_VM, NULL));
}
static napi_value LcSlot(napi_env env, napi_callback_info info) {
  napi_value ab;
  size_t len;
  void *mem = arraybuffer_arg(env, info, 1, &ab, &len);
  struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = len,
                                          .userspace_addr = (unsigned long)mem};
  if (xioctl(arg_int(env, info, 0), KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
  return NULL;
}
static napi_value LcVcpu(napi_env env, napi_callback_info info) {
  int vcpu = xioctl(arg_int(env, info, 0), KVM_CREATE_VCPU, NULL);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  lcRun_ = mmap(NULL, lcRunSize_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (lcRun_ == MAP_FAILED) die("mmap kvm_run");
  return int_value(env, vcpu);
}
static napi_value LcSregs(napi_env env, napi_callback_info info) {
  real_mode_sregs(arg_int(env, info, 0));
  return NULL;
}
static napi_value LcRegs(napi_env env, napi_callback_info info) {
  real_mode_regs(arg_int(env, info, 0), 0);
  return NULL;
}
static napi_value LcRunOnce(napi_env env, napi_callback_info info) {
  if (xioctl(arg_int(env, info, 0), KVM_RUN, NULL) < 0) die("KVM_RUN");
  return int_value(env, (int32_t)lcRun_->exit_reason);
}
static napi_value LcClose(napi_env env, napi_callback_info info) {
  munmap(lcRun_, lcRunSize_);
  close(arg_int(env, info, 1));
  close(arg_int(env, info, 0));
  return NULL;
}
static napi_value LcFree(napi_env env, napi_callback_info info) {
  napi_value ab;
  size_t len;
  void *mem = arraybuffer_arg(env, info, 0, &ab, &len);
  napi_detach_arraybuffer(env, ab);
  munmap(mem, len);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "io", NAPI_AUTO_LENGTH, Run, (void *)1, &fn);
  napi_set_named_property(env, exports, "io", fn);
  napi_create_function(env, "mmio", NAPI_AUTO_LENGTH, Run, (void *)3, &fn);
  napi_set_named_property(env, exports, "mmio", fn);
  napi_create_function(env, "lifecycle", NAPI_AUTO_LENGTH, Run, (void *)2, &fn);
  napi_set_named_property(env, exports, "lifecycle", fn);
  napi_create_function(env, "kvmRun", NAPI_AUTO_LENGTH, KvmRun, NULL, &fn);
  napi_set_named_property(env, exports, "kvmRun", fn);
  napi_create_function(env, "gap", NAPI_AUTO_LENGTH, Gap, NULL, &fn);
  napi_set_named_property(env, exports, "gap", fn);
  napi_value lc;
  napi_create_object(env, &lc);
  static const struct { const char *name; napi_callback cb; } kLc[] = {
      {"memory", LcMemory}, {"vm", LcVm},         {"slot", LcSlot},   {"vcpu", LcVcpu}, {"sregs", LcSregs},
      {"regs", LcRegs},     {"run", LcRunOnce}, {"close", LcClose}, {"free", LcFree},
  };
  for (size_t i = 0; i < sizeof kLc / sizeof kLc[0]; i++) {
    napi_create_function(env, kLc[i].name, NAPI_AUTO_LENGTH, kLc[i].cb, NULL, &fn);
    napi_set_named_property(env, lc, kLc[i].name, fn);
  }
  napi_set_named_property(env, exports, "lc", lc);
  return exports;
}
