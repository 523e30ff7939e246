#include "vcpu_core.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <sched.h>

#include <cerrno>
#include <system_error>
#include <unordered_map>

#include "base/buffers.h"
#include "base/errors.h"
#include "kick.h"

namespace nodekvm {

namespace {
// Handles of live vCPU cores, for kickVcpu() from any thread. A core
// removes itself under the lock before it goes, so a kick never reaches a
// destroyed one.
std::mutex gCoresMu;
std::unordered_map<uint64_t, VcpuCore*> gCores;
uint64_t gNextHandle = 1;

// Busy-waits up to ns for done(); true when it came. The clock is read
// every 64 rounds, and no PAUSE: under a hypervisor (this host is one)
// pause-loop exiting hands the CPU away and costs far more than the wait.
template <class Done>
bool SpinFor(int64_t ns, Done done) {
  int64_t until = MonotonicNs() + ns;
  for (unsigned i = 1;; i++) {
    if (done()) return true;
    if (i % 64 == 0 && MonotonicNs() >= until) return false;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
}
}  // namespace

VcpuCore::VcpuCore(UniqueFd fd, void* run, size_t runSize)
    : fd_(std::move(fd)), run_(run), runSize_(runSize), runMapping_(std::make_shared<Mapping>(run, runSize)) {
  syncRun_.bits = &runState_;
  std::lock_guard<std::mutex> lock(gCoresMu);
  handle_ = gNextHandle++;
  gCores.emplace(handle_, this);
}

VcpuCore::~VcpuCore() {
  {
    std::lock_guard<std::mutex> lock(gCoresMu);
    gCores.erase(handle_);
  }
  Shutdown();
}

bool VcpuCore::KickHandle(uint64_t handle) {
  std::lock_guard<std::mutex> lock(gCoresMu);
  auto it = gCores.find(handle);
  return it != gCores.end() && it->second->Kick();
}

Napi::Value VcpuCore::RunBuffer(Napi::Env env) {
  if (runBuffer_.IsEmpty()) {
    auto keep = runMapping_;
    runBuffer_ = Napi::Persistent(
        NewExternalBuffer(env, run_, runSize_, [keep](Napi::Env, void*) mutable { keep.reset(); }));
  }
  return runBuffer_.Value();
}

int VcpuCore::RunOnce(bool* kicked, bool immediate, SyncRun* sync) {
  using namespace runbits;
  runner_ = pthread_self();
  // Before kInRun is published: a kicker that sees it sets 1 after this.
  SetImmediateExit(run(), immediate);
  uint32_t before = runState_.fetch_or(sync != nullptr ? kInRun | kSync : kInRun, std::memory_order_seq_cst);
  if (sync != nullptr) WatchNotice(sync);
  if (before & kPending) {
    // A kick that came before entry must still end this run (kept for the
    // next real run when this one only completes pending I/O).
    SetImmediateExit(run(), true);
    if (!immediate) {
      uint32_t s = runState_.load(std::memory_order_relaxed);
      while (!runState_.compare_exchange_weak(s, (s & ~uint32_t{kPending}) | kKicked, std::memory_order_seq_cst)) {
      }
    }
  }
  int r;
  // A vCPU waiting for INIT/SIPI blocks in KVM_RUN until they come, then
  // returns EAGAIN: it is ready to run, so run it again (as QEMU does).
  do r = ::ioctl(fd_.get(), KVM_RUN, 0);
  while (r < 0 && errno == EAGAIN);
  int err = r < 0 ? errno : 0;
  // The run ends only once no kicker or watchdog is between seeing it and
  // signalling it.
  uint32_t s = runState_.load(std::memory_order_relaxed);
  for (unsigned spins = 1;; spins++) {
    if (s & (kKicking | kWatching)) {
      if (spins % 1024 == 0) sched_yield();  // the signaller may wait for this CPU
      std::atomic_signal_fence(std::memory_order_seq_cst);
      s = runState_.load(std::memory_order_relaxed);
      continue;
    }
    // A kick that did not end this run (it ended with an exit of its own,
    // or only completed pending I/O) ends the next one. A sync run that
    // goes on after EINTR can still be kicked between its KVM_RUNs.
    uint32_t next = (s & kPending) | ((r >= 0 || immediate) && (s & kKicked) ? uint32_t{kPending} : 0u) |
                    (sync != nullptr && r < 0 && !(s & kKicked) ? uint32_t{kBetween} : 0u);
    if (runState_.compare_exchange_weak(s, next, std::memory_order_seq_cst)) break;
  }
  if (s & kSignalled) {
    // A signal sent to this run may still be on its way (queued, its
    // interrupt not yet here): a system call takes it now, so that none
    // this thread makes later sees it.
    sigset_t pending;
    sigpending(&pending);
  }
  *kicked = r < 0 && !immediate && (s & kKicked);
  if (r < 0 && err == EINTR) run()->exit_reason = KVM_EXIT_INTR;
  errno = err;
  return r;
}

void VcpuCore::EndBetween() {
  // The run returns: a kick that came between its KVM_RUNs is answered by
  // what it returns (intr, or an error).
  runState_.fetch_and(~uint32_t{runbits::kBetween | runbits::kPending}, std::memory_order_seq_cst);
}

bool VcpuCore::Kick() {
  using namespace runbits;
  int signo = KickSignal();  // before any bit is held: it takes a lock
  // Kickers take turns (and keep Shutdown() from unmapping kvm_run
  // meanwhile); the runner takes no lock.
  std::lock_guard<std::mutex> lock(runMu_);
  if (run_ == nullptr) return false;
  uint32_t s = runState_.load(std::memory_order_seq_cst);
  for (;;) {
    if (s & kInRun) {
      // One signal per run: the kick signal is a real-time one, so signals
      // queue rather than merge, and a run kicked faster than it could take
      // them would spend its time in the handler and never end.
      if (s & kKicked) return true;
      if (!runState_.compare_exchange_weak(s, s | kKicking | kKicked | kSignalled, std::memory_order_seq_cst)) continue;
      SetImmediateExit(run(), true);  // in case the signal lands just before KVM_RUN
      int err = pthread_kill(runner_, signo);
      // EAGAIN: the user's queue of real-time signals is full; nothing was kicked.
      runState_.fetch_and(~uint32_t{err == 0 ? kKicking : kKicking | kKicked}, std::memory_order_seq_cst);
      return err == 0;
    }
    if (!asyncPending_ && !(s & kBetween)) return false;
    if (runState_.compare_exchange_weak(s, s | kPending, std::memory_order_seq_cst)) return true;
  }
}

Napi::Value VcpuCore::StartAsync(Napi::Env env, int64_t spinNs) {
  EnsureKickHandler(env);
  if (!worker_.joinable()) {
    tsfn_ = Tsfn::New(env, "node-kvm vCPU", 0, 1);
    tsfn_->Unref(env);
    try {
      worker_ = std::thread([this] { WorkerLoop(); });
      pthread_setname_np(worker_.native_handle(), "node-kvm vcpu");  // for ps, top and tests
    } catch (const std::system_error& e) {
      tsfn_->Release();
      tsfn_.reset();
      throw SysError(env, e.code().value(), "pthread_create", "the vCPU thread");
    }
    // Registered after the ThreadSafeFunction, so that at teardown it runs
    // first (hooks run newest first) and stops the thread while the
    // function is still alive.
    hookEnv_ = env;
    napi_add_env_cleanup_hook(env, &VcpuCore::TeardownHook, this);
  }
  if (!CanSpin()) spinNs = 0;
  spinNs_.store(spinNs, std::memory_order_relaxed);
  busy_ = true;
  {
    std::lock_guard<std::mutex> lock(runMu_);
    asyncPending_ = true;
  }
  handOver_.store(spinNs > 0 ? kWaiting : kPosted, std::memory_order_release);
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_.store(true, std::memory_order_release);
    wake = sleeping_;
  }
  if (wake) cv_.notify_one();
  if (spinNs > 0) {
    // A sleeping vCPU thread takes a while to wake: wait longer for it
    // rather than add a second wake-up (this thread's) on top.
    bool done = SpinFor(wake ? 4 * spinNs : spinNs, [this] { return handOver_.load(std::memory_order_acquire) == kDone; });
    int expected = kWaiting;
    // Not done in time: post it, unless it got done just now.
    if (done || !handOver_.compare_exchange_strong(expected, kPosted, std::memory_order_acq_rel)) {
      EndAsync();
      return Outcome(env, ret_, err_);
    }
  }
  deferred_.emplace(Napi::Promise::Deferred::New(env));
  tsfn_->Ref(env);  // keep the event loop alive until the run returns
  return deferred_->Promise();
}

// What a finished run gives JavaScript: its exit reason, or (thrown) the
// error its promise rejects with.
Napi::Value VcpuCore::Outcome(Napi::Env env, int ret, int err) {
  if (closed()) throw SysError(env, EBADF, "KVM_RUN", "the vCPU was closed while it ran");
  if (ret < 0 && err != EINTR) throw SysError(env, err, "KVM_RUN");
  return Napi::Number::New(env, run()->exit_reason);
}

bool VcpuCore::CanSpin() {
  static const bool many = [] {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
  }();
  return many;
}

void VcpuCore::EndAsync() {
  busy_ = false;
  std::lock_guard<std::mutex> lock(runMu_);
  asyncPending_ = false;
}

void VcpuCore::Park() {
  busy_ = true;
  std::lock_guard<std::mutex> lock(runMu_);
  asyncPending_ = true;
}

void VcpuCore::Unpark() {
  busy_ = false;
  std::lock_guard<std::mutex> lock(runMu_);
  asyncPending_ = false;
  runState_.fetch_and(~uint32_t{runbits::kPending}, std::memory_order_seq_cst);
}

void VcpuCore::TeardownHook(void* arg) {
  auto* core = static_cast<VcpuCore*>(arg);
  Napi::HandleScope scope(Napi::Env(core->hookEnv_));  // hooks run outside any scope
  core->hookEnv_ = nullptr;  // running now: nothing to remove
  core->Shutdown();
}

void VcpuCore::WorkerLoop() {
  // Only the kick signal may interrupt this thread's KVM_RUN.
  sigset_t set;
  sigfillset(&set);
  sigdelset(&set, KickSignal());
  pthread_sigmask(SIG_SETMASK, &set, nullptr);
  for (;;) {
    // The next request usually comes within microseconds of the last exit:
    // spinning for it costs less than sleeping and being woken.
    int64_t spin = spinNs_.load(std::memory_order_relaxed);
    if (spin > 0) {
      // Longer than JS spins: its side may take a turn of the event loop.
      SpinFor(2 * spin, [this] { return requested_.load(std::memory_order_acquire) || stop_.load(std::memory_order_relaxed); });
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      sleeping_ = true;
      cv_.wait(lock, [this] { return requested_.load() || stop_.load(); });
      sleeping_ = false;
      // A run requested just before a stop still runs: Shutdown() has
      // kicked it, so KVM_RUN returns EINTR at once and the promise settles.
      if (!requested_.load()) return;
      requested_.store(false);
    }
    bool kicked = false;
    int ret = RunOnce(&kicked);
    int err = ret < 0 ? errno : 0;
    ret_ = ret;
    err_ = err;
    int expected = kWaiting;
    if (handOver_.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) continue;  // JS takes it
    auto c = std::make_unique<Completion>(Completion{shared_from_this(), ret, err});
    if (tsfn_->BlockingCall(c.get()) == napi_ok) c.release();  // Deliver frees it
  }
}

void VcpuCore::Deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* raw) {
  std::unique_ptr<Completion> c(raw);
  if (env == nullptr) return;  // environment shutting down
  c->core->Finish(env, c->ret, c->err);
}

void VcpuCore::Finish(Napi::Env env, int ret, int err) {
  EndAsync();
  if (tsfn_) tsfn_->Unref(env);
  if (!deferred_) return;
  Napi::Promise::Deferred d = *deferred_;
  deferred_.reset();
  if (collected_) {
    // Garbage-collected with the run in flight: no one can see a rejection.
    d.Resolve(Napi::Number::New(env, -1));
    return;
  }
  try {
    d.Resolve(Outcome(env, ret, err));
  } catch (const Napi::Error& e) {
    d.Reject(e.Value());
  }
}

void VcpuCore::Shutdown() {
  if (hookEnv_ != nullptr) {
    napi_remove_env_cleanup_hook(hookEnv_, &VcpuCore::TeardownHook, this);
    hookEnv_ = nullptr;
  }
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    Kick();
    cv_.notify_one();
    worker_.join();
    // A queued completion is still delivered (and rejects) after this.
    tsfn_->Release();
    tsfn_.reset();
  }
  bool handedOut = !runBuffer_.IsEmpty();
  if (handedOut) {
    DetachBuffer(runBuffer_.Value());
    runBuffer_.Reset();
  }
  dirtyRing_.map.reset();  // like kvm_run, it holds the vCPU file open
  if (syncRun_.added) {
    WatchRemove(&syncRun_);  // before kvm_run goes: the watchdog writes to it
    syncRun_.added = false;
  }
  {
    std::lock_guard<std::mutex> lock(runMu_);
    if (run_ != nullptr) {
      // The mapping holds the vCPU file open: it must go, or the VM lives
      // on. Bytes JavaScript took may have escaped detaching: zero pages
      // take kvm_run's place (should that fail, kvm_run and the VM stay
      // until the last buffer goes), and the range goes with that buffer.
      if (handedOut) {
        (void)::mmap(run_, runSize_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      }
      runMapping_.reset();
      run_ = nullptr;
    }
  }
  fd_.Reset();
}

}  // namespace nodekvm
