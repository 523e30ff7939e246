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
  return exports;
}
