#include "vcpu_core.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <system_error>
#include <unordered_map>

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
}  // namespace

VcpuCore::VcpuCore(UniqueFd fd, void* run, size_t runSize)
    : fd_(std::move(fd)), run_(run), runSize_(runSize) {
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
    // No finalizer work: Shutdown() detaches this buffer before unmapping.
    runBuffer_ = Napi::Persistent(Napi::ArrayBuffer::New(env, run_, runSize_, [](Napi::Env, void*) {}));
  }
  return runBuffer_.Value();
}

int VcpuCore::RunOnce(bool* kicked, bool immediate) {
  {
    std::lock_guard<std::mutex> lock(runMu_);
    inRun_ = true;
    runner_ = pthread_self();
    // A kick that came before entry must still end this run.
    kicked_ = kickPending_;
    run()->immediate_exit = kickPending_ || immediate ? 1 : 0;
    kickPending_ = false;
  }
  int r;
  // A vCPU waiting for INIT/SIPI blocks in KVM_RUN until they come, then
  // returns EAGAIN: it is ready to run, so run it again (as QEMU does).
  do r = ::ioctl(fd_.get(), KVM_RUN, 0);
  while (r < 0 && errno == EAGAIN);
  int err = r < 0 ? errno : 0;
  {
    std::lock_guard<std::mutex> lock(runMu_);
    inRun_ = false;
    asyncPending_ = false;
    *kicked = kicked_;
    kicked_ = false;
  }
  if (r < 0 && err == EINTR) run()->exit_reason = KVM_EXIT_INTR;
  errno = err;
  return r;
}

bool VcpuCore::Kick() {
  std::lock_guard<std::mutex> lock(runMu_);
  if (run_ == nullptr) return false;
  if (inRun_) {
    kicked_ = true;
    run()->immediate_exit = 1;  // in case the signal lands just before KVM_RUN
    pthread_kill(runner_, KickSignal());
    return true;
  }
  if (asyncPending_) {
    kickPending_ = true;
    return true;
  }
  return false;
}

Napi::Promise VcpuCore::StartAsync(Napi::Env env) {
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
  deferred_.emplace(Napi::Promise::Deferred::New(env));
  busy_ = true;
  tsfn_->Ref(env);  // keep the event loop alive until the run returns
  {
    std::lock_guard<std::mutex> lock(runMu_);
    asyncPending_ = true;
    kickPending_ = false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = true;
  }
  cv_.notify_one();
  return deferred_->Promise();
}

void VcpuCore::Park() {
  busy_ = true;
  std::lock_guard<std::mutex> lock(runMu_);
  asyncPending_ = true;
  kickPending_ = false;
}

void VcpuCore::Unpark() {
  busy_ = false;
  std::lock_guard<std::mutex> lock(runMu_);
  asyncPending_ = false;
  kickPending_ = false;
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
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return requested_ || stop_; });
      // A run requested just before a stop still runs: Shutdown() has
      // kicked it, so KVM_RUN returns EINTR at once and the promise settles.
      if (!requested_) return;
      requested_ = false;
    }
    bool kicked = false;
    int ret = RunOnce(&kicked);
    int err = ret < 0 ? errno : 0;
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
  busy_ = false;
  if (tsfn_) tsfn_->Unref(env);
  if (!deferred_) return;
  Napi::Promise::Deferred d = *deferred_;
  deferred_.reset();
  if (collected_) {
    // Garbage-collected with the run in flight: no one can see a rejection.
    d.Resolve(Napi::Number::New(env, -1));
  } else if (closed()) {
    d.Reject(SysError(env, EBADF, "KVM_RUN", "the vCPU was closed while it ran").Value());
  } else if (ret < 0 && err != EINTR) {
    d.Reject(SysError(env, err, "KVM_RUN").Value());
  } else {
    d.Resolve(Napi::Number::New(env, run()->exit_reason));
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
      stop_ = true;
    }
    Kick();
    cv_.notify_one();
    worker_.join();
    // A queued completion is still delivered (and rejects) after this.
    tsfn_->Release();
    tsfn_.reset();
  }
  if (!runBuffer_.IsEmpty()) {
    Napi::ArrayBuffer ab = runBuffer_.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    runBuffer_.Reset();
  }
  dirtyRing_.map.reset();  // like kvm_run, it holds the vCPU file open
  {
    std::lock_guard<std::mutex> lock(runMu_);
    if (run_ != nullptr) {
      // The mapping holds the vCPU file open: unmap it or the VM lives on.
      ::munmap(run_, runSize_);
      run_ = nullptr;
    }
  }
  fd_.Reset();
}

}  // namespace nodekvm
