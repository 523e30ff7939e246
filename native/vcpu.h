// A vCPU fd: registers, the kvm_run page and KVM_RUN, sync or on a thread.
#pragma once

#include <linux/kvm.h>
#include <napi.h>
#include <pthread.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "fd.h"

namespace nodekvm {

class Vm;

// What outlives the JS wrapper: the fd, the kvm_run mapping and the thread
// that runs KVM_RUN for runAsync(). The VM holds one reference so that
// closing the VM closes its vCPUs.
class VcpuCore : public std::enable_shared_from_this<VcpuCore> {
 public:
  VcpuCore(UniqueFd fd, void* run, size_t runSize);
  ~VcpuCore();

  bool closed() const { return !fd_.valid(); }
  int fd() const { return fd_.get(); }
  kvm_run* run() const { return static_cast<kvm_run*>(run_); }
  bool busy() const { return busy_; }

  Napi::Value RunBuffer(Napi::Env env);
  Napi::Promise StartAsync(Napi::Env env);
  bool Kick();
  // Stops a run in flight, joins the thread, unmaps kvm_run and closes the
  // fd. Idempotent; main thread only.
  void Shutdown();

 private:
  struct Completion {
    std::shared_ptr<VcpuCore> core;
    int ret;
    int err;
  };
  static void Deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* c);
  static void TeardownHook(void* arg);
  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Completion, &VcpuCore::Deliver>;

  void WorkerLoop();
  void Finish(Napi::Env env, int ret, int err);

  UniqueFd fd_;
  void* run_;
  size_t runSize_;
  Napi::Reference<Napi::ArrayBuffer> runBuffer_;

  bool busy_ = false;  // a runAsync() is in flight
  std::optional<Napi::Promise::Deferred> deferred_;
  std::optional<Tsfn> tsfn_;
  napi_env hookEnv_ = nullptr;  // set while the teardown hook is registered
  std::thread worker_;
  pthread_t workerHandle_{};
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool stop_ = false;
};

class Vcpu : public Napi::ObjectWrap<Vcpu> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, Napi::Object vm, std::shared_ptr<VcpuCore> core,
                                  uint32_t id);
  static Napi::Object RunLayout(Napi::Env env);
  explicit Vcpu(const Napi::CallbackInfo& info);
  ~Vcpu() override;

 private:
  int Fd(const char* syscall, bool forRun = false);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value RunAsync(const Napi::CallbackInfo& info);
  Napi::Value Kick(const Napi::CallbackInfo& info);
  Napi::Value GetRegs(const Napi::CallbackInfo& info);
  void SetRegs(const Napi::CallbackInfo& info);
  Napi::Value GetSregs(const Napi::CallbackInfo& info);
  void SetSregs(const Napi::CallbackInfo& info);
  void SetCpuid(const Napi::CallbackInfo& info);
  Napi::Value Translate(const Napi::CallbackInfo& info);
  void SetGuestDebug(const Napi::CallbackInfo& info);
  Napi::Value GetStatsFd(const Napi::CallbackInfo& info);
  Napi::Value GetRunBuffer(const Napi::CallbackInfo& info);
  Napi::Value GetId(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetRunning(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  std::shared_ptr<VcpuCore> core_;
  Vm* vm_ = nullptr;
  Napi::ObjectReference vmRef_;  // the VM must outlive its vCPU's wrapper
  uint32_t id_ = 0;
};

}  // namespace nodekvm
