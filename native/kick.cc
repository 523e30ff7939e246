#include "kick.h"

#include <signal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "base/errors.h"

namespace nodekvm {

namespace {
std::mutex gSignalMu;
int gKickSignal = 0;  // 0: not chosen yet, SIGRTMIN+3 at first use
bool gInstalled = false;

void Nothing(int) {}

// A run that lasts this long gets a tick, to check its environment.
constexpr int64_t kTickNs = 100'000'000;
// Ticks without runs before the watchdog sleeps until the next run.
constexpr int kIdleTicks = 50;
// How often a run past its deadline is signalled again.
constexpr int64_t kResignalNs = 1'000'000;
// How late a deadline may be noticed, rather than wake the watchdog.
constexpr int64_t kSlackNs = 50'000;

class Watchdog : public std::enable_shared_from_this<Watchdog> {
 public:
  void Begin(SyncRun* r) {
    r->tickNs = MonotonicNs() + kTickNs;
    std::lock_guard<std::mutex> lock(mu_);
    runs_.push_back(r);
    if (!started_) {
      started_ = true;
      // Detached: it sleeps when no run needs it, and holds itself alive.
      std::thread([self = shared_from_this()] { self->Loop(); }).detach();
    }
    // Waking the watchdog costs a futex call and a thread wake-up, as much
    // as a short run: only when it sleeps for good, or would sleep well
    // past this run's deadline. It looks at the runs every tick anyway.
    if (deepIdle_ || (r->deadlineNs != 0 && r->deadlineNs + kSlackNs < wakeNs_)) cv_.notify_one();
  }
  void End(SyncRun* r) {
    std::lock_guard<std::mutex> lock(mu_);
    runs_.erase(std::find(runs_.begin(), runs_.end(), r));
  }

 private:
  void Loop() {
    pthread_setname_np(pthread_self(), "node-kvm watch");
    // Never the target of anyone's signals.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, nullptr);
    std::unique_lock<std::mutex> lock(mu_);
    int idleTicks = 0;
    for (;;) {
      if (runs_.empty() && ++idleTicks > kIdleTicks) {
        // No runs for a while: sleep until one comes (Begin() wakes us).
        deepIdle_ = true;
        wakeNs_ = INT64_MAX;
        cv_.wait(lock, [this] { return !runs_.empty(); });
        deepIdle_ = false;
      }
      if (!runs_.empty()) idleTicks = 0;
      int64_t now = MonotonicNs();
      wakeNs_ = now + kTickNs;
      for (SyncRun* r : runs_) {
        wakeNs_ = std::min(wakeNs_, r->deadlineNs != 0 ? std::min(r->deadlineNs, r->tickNs) : r->tickNs);
      }
      cv_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(wakeNs_ - now, 0)));
      now = MonotonicNs();
      for (SyncRun* r : runs_) {
        int why = SyncRun::kNone;
        if (r->deadlineNs != 0 && now >= r->deadlineNs) {
          why = SyncRun::kTimeout;
          // Again in a while if it is still running then (the signal can land
          // just before KVM_RUN), but never in a loop: a run slow to return
          // would be flooded with signals, and on one CPU starved.
          r->deadlineNs = now + kResignalNs;
        } else if (now >= r->tickNs) {
          why = SyncRun::kTick;
          r->tickNs = now + kTickNs;
        }
        if (why == SyncRun::kNone) continue;
        int expected = SyncRun::kNone;
        r->reason.compare_exchange_strong(expected, why);
        r->run->immediate_exit = 1;
        pthread_kill(r->thread, KickSignal());
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SyncRun*> runs_;
  bool started_ = false;
  bool deepIdle_ = false;  // asleep until a run begins
  int64_t wakeNs_ = 0;     // when the sleeping watchdog wakes next
};

Watchdog& TheWatchdog() {
  static const std::shared_ptr<Watchdog> w = std::make_shared<Watchdog>();
  return *w;
}
}  // namespace

int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int KickSignal() {
  std::lock_guard<std::mutex> lock(gSignalMu);
  if (gKickSignal == 0) gKickSignal = SIGRTMIN + 3;
  return gKickSignal;
}

void SetKickSignal(Napi::Env env, int signo) {
  std::lock_guard<std::mutex> lock(gSignalMu);
  if (gInstalled && signo != gKickSignal) {
    throw SysError(env, EBUSY, "sigaction",
                   "the kick signal is already in use (" + std::to_string(gKickSignal) +
                       "); choose it before the first run");
  }
  gKickSignal = signo;
}

void EnsureKickHandler(Napi::Env env) {
  std::lock_guard<std::mutex> lock(gSignalMu);
  if (gInstalled) return;
  if (gKickSignal == 0) gKickSignal = SIGRTMIN + 3;
  struct sigaction old {};
  sigaction(gKickSignal, nullptr, &old);
  // sa_handler and sa_sigaction share storage, so this covers SA_SIGINFO handlers too.
  if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
    throw SysError(env, EBUSY, "sigaction",
                   "signal " + std::to_string(gKickSignal) +
                       ", which node-kvm uses to kick vCPUs, already has a handler; choose another with "
                       "setKickSignal()");
  }
  struct sigaction sa {};
  sa.sa_handler = Nothing;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return
  sigaction(gKickSignal, &sa, nullptr);
  gInstalled = true;
}

void UnblockKickSignal() {
  thread_local bool done = false;
  if (done) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, KickSignal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  done = true;
}

void WatchBegin(SyncRun* r) { TheWatchdog().Begin(r); }
void WatchEnd(SyncRun* r) { TheWatchdog().End(r); }

}  // namespace nodekvm
