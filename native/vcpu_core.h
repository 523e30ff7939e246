// The vCPU's kernel side, shared by the vCPU (in its table) and the VM: the
// fd, the kvm_run mapping, and the thread that runs KVM_RUN for runAsync().
#pragma once

#include <linux/kvm.h>
#include <napi.h>
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/fd.h"
#include "kick.h"

namespace nodekvm {

// What outlives the vCPU's table entry: the fd, the kvm_run mapping and the
// thread that runs KVM_RUN for runAsync(). The VM holds one reference so that
// closing the VM closes its vCPUs.
class VcpuCore : public std::enable_shared_from_this<VcpuCore> {
 public:
  VcpuCore(UniqueFd fd, void* run, size_t runSize);
  ~VcpuCore();

  bool closed() const { return !fd_.valid(); }
  int fd() const { return fd_.get(); }
  kvm_run* run() const { return static_cast<kvm_run*>(run_); }
  bool busy() const { return busy_; }
  // Whether a run must first check the VM's borrowed slots (Vm keeps it).
  bool checkSlots() const { return checkSlots_; }
  void setCheckSlots(bool on) { checkSlots_ = on; }
  // A process-wide number for kickVcpu() from any thread.
  uint64_t handle() const { return handle_; }

  Napi::Value RunBuffer(Napi::Env env);
  // One KVM_RUN on the calling thread. On EINTR, exit_reason is set to
  // KVM_EXIT_INTR (KVM leaves it stale when immediate_exit stops the run
  // before entry); *kicked says whether Kick() ended it. `immediate` sets
  // immediate_exit: KVM completes pending I/O and returns at once.
  // `sync`: a sync run's watchdog fields (WatchBegin'd), or none.
  int RunOnce(bool* kicked, bool immediate = false, SyncRun* sync = nullptr);
  // Hands one KVM_RUN to the vCPU thread. With spinNs > 0 (and more than
  // one CPU) it waits that long for the exit before it gives up: an exit
  // that comes in time returns its reason as a number, with no thread
  // wake-up on either side; otherwise a Promise settles later.
  Napi::Value StartAsync(Napi::Env env, int64_t spinNs);
  // Holds the vCPU for a runAsync() that waits for the next turn of the
  // event loop: busy to other calls, and a kick meanwhile ends the run
  // that follows. EndPark() lets that run start; Unpark() drops it.
  void Park();
  void EndPark() { busy_ = false; }
  void Unpark();
  // Whether spinning can pay: never on one CPU, where it only delays the
  // thread it waits for.
  static bool CanSpin();
  // Ends the run in flight, from any thread; false when there is none.
  bool Kick();
  // A sync run that went on after EINTR returns (see runbits::kBetween).
  void EndBetween();
  // Kicks the vCPU with this handle, if it still exists.
  static bool KickHandle(uint64_t handle);
  // Set when lib's handle (or its VM's) was garbage-collected: nobody
  // awaits the run.
  void MarkCollected() { collected_ = true; }
  // Stops a run in flight, joins the thread, unmaps kvm_run and closes the
  // fd. Idempotent; main thread only.
  void Shutdown();

  // The dirty ring (rings.cc): mapped on the first harvest, unmapped by
  // Shutdown(); `fetch` is the next entry to harvest.
  struct DirtyRing {
    std::unique_ptr<Mapping> map;
    uint32_t entries = 0;
    uint32_t fetch = 0;
  };
  DirtyRing& dirtyRing() { return dirtyRing_; }

  // This vCPU's sync runs, for the watchdog (kick.h); added at the first.
  SyncRun& syncRun() { return syncRun_; }

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
  // The JS side of an async run is over: its result reached JavaScript.
  void EndAsync();
  void Finish(Napi::Env env, int ret, int err);
  Napi::Value Outcome(Napi::Env env, int ret, int err);

  // What each sync run reads and writes comes first, packed into as few
  // cache lines as it fits: after ~9 µs in the kernel each line it touches
  // is a miss, and the exit's round trip is the figure that counts.
  UniqueFd fd_;
  void* run_;
  bool busy_ = false;          // a runAsync() is in flight
  bool checkSlots_ = false;    // the VM has slots whose memory needs checking
  // From runAsync() (or park()) until JavaScript has the result: a kick
  // outside KVM_RUN in that time ends the next run, so none is lost
  // (runMu_ guards it).
  bool asyncPending_ = false;
  // The run in flight (kick.h's runbits), for Kick() and the watchdog
  // from any thread: kKicked, Kick() ended this run; kPending, a kick for
  // the next run.
  std::atomic<uint32_t> runState_{0};
  pthread_t runner_{};  // the thread in the run (published by kInRun)
  SyncRun syncRun_;
  std::mutex runMu_;

  size_t runSize_;
  // kvm_run's range, shared with runBuffer_'s finalizer: a buffer moved
  // past detaching (ArrayBuffer.prototype.transfer()) keeps it mapped.
  std::shared_ptr<Mapping> runMapping_;
  uint64_t handle_;
  DirtyRing dirtyRing_;
  Napi::Reference<Napi::ArrayBuffer> runBuffer_;
  bool collected_ = false;
  std::optional<Napi::Promise::Deferred> deferred_;
  std::optional<Tsfn> tsfn_;
  napi_env hookEnv_ = nullptr;  // set while the teardown hook is registered
  std::thread worker_;

  // The vCPU thread's work queue. The thread spins a while for the next
  // request before it sleeps (sleeping_: a request must notify).
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> requested_{false};
  std::atomic<bool> stop_{false};
  bool sleeping_ = false;
  std::atomic<int64_t> spinNs_{0};

  // The hand-over of one run's result: the JS thread spins in kWaiting;
  // the vCPU thread moves it to kDone (JS takes ret_/err_), or, once JS
  // gave up (kPosted), delivers through the ThreadSafeFunction.
  enum HandOver : int { kWaiting, kDone, kPosted };
  std::atomic<int> handOver_{kPosted};
  int ret_ = 0;
  int err_ = 0;
};

}  // namespace nodekvm
