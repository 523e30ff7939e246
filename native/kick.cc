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
#include <system_error>
#include <thread>
#include <vector>

#include "base/errors.h"

namespace nodekvm {

namespace {
std::mutex gSignalMu;
int gKickSignal = 0;  // 0: not chosen yet, SIGRTMIN+3 at first use
bool gInstalled = false;

void Nothing(int) {}

// A run that lasts this long (up to twice as long) gets a tick, to check
// its environment.
constexpr int64_t kTickNs = 100'000'000;
// Ticks without runs before the watchdog sleeps until the next run.
constexpr int kIdleTicks = 50;
// How often a run past its deadline is signalled again.
constexpr int64_t kResignalNs = 1'000'000;

class Watchdog : public std::enable_shared_from_this<Watchdog> {
 public:
  // 0, or the errno of a watchdog thread that could not start (then r is
  // not added: its runs could never time out).
  int Add(SyncRun* r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_) {
      try {
        // Detached: it sleeps when no run needs it, and holds itself alive.
        std::thread([self = shared_from_this()] { self->Loop(); }).detach();
      } catch (const std::system_error& e) {
        return e.code().value();
      }
      started_ = true;
    }
    runs_.push_back(r);
    return 0;
  }
  void Remove(SyncRun* r) {
    std::lock_guard<std::mutex> lock(mu_);
    runs_.erase(std::find(runs_.begin(), runs_.end(), r));
  }
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
    cv_.notify_one();
  }

 private:
  static bool InSyncRun(uint32_t bits) {
    return (bits & (runbits::kInRun | runbits::kSync)) == (runbits::kInRun | runbits::kSync);
  }
  bool AnyActive() const {
    for (SyncRun* r : runs_) {
      if (InSyncRun(r->bits->load(std::memory_order_seq_cst))) return true;
    }
    return false;
  }

  void Loop() {
    pthread_setname_np(pthread_self(), "node-kvm watch");
    // Never the target of anyone's signals.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, nullptr);
    std::unique_lock<std::mutex> lock(mu_);
    int idleTicks = 0;
    for (;;) {
      if (AnyActive()) {
        idleTicks = 0;
      } else if (++idleTicks > kIdleTicks) {
        // No runs for a while: sleep until one comes (WatchBegin() wakes us).
        wake_ = false;
        watch::asleep.store(true, std::memory_order_seq_cst);
        if (!AnyActive()) cv_.wait(lock, [this] { return wake_; });
        watch::asleep.store(false, std::memory_order_seq_cst);
        idleTicks = 0;
      }
      wake_ = false;
      // Undecided: a run that begins while the deadlines are read wakes
      // this thread (WatchBegin() stores, then loads; this stores, then loads).
      watch::wakeNs.store(INT64_MAX, std::memory_order_seq_cst);
      int64_t now = MonotonicNs();
      int64_t wakeNs = now + kTickNs;
      for (SyncRun* r : runs_) {
        if (!InSyncRun(r->bits->load(std::memory_order_seq_cst))) continue;
        int64_t d = r->deadlineNs.load(std::memory_order_relaxed);
        bool seen = r->gen.load(std::memory_order_relaxed) == r->seenGen;
        if (d != 0) wakeNs = std::min(wakeNs, seen ? std::max(d, r->resignalNs) : d);
      }
      watch::wakeNs.store(wakeNs, std::memory_order_seq_cst);
      cv_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(wakeNs - now, 0)), [this] { return wake_; });
      now = MonotonicNs();
      for (SyncRun* r : runs_) Check(r, now);
    }
  }

  // Signals r if its run passed its deadline, or is the run seen a tick ago.
  void Check(SyncRun* r, int64_t now) {
    uint32_t bits = r->bits->load(std::memory_order_seq_cst);
    if (!InSyncRun(bits)) return;
    uint64_t gen = r->gen.load(std::memory_order_seq_cst);
    if (gen != r->seenGen) {
      // A run not seen before: it began within the last tick, so ticking it
      // at the next look gives it between one and two ticks.
      r->seenGen = gen;
      r->tickNs = now + kTickNs / 2;
      r->resignalNs = 0;
    }
    int why = SyncRun::kNone;
    int64_t d = r->deadlineNs.load(std::memory_order_relaxed);
    if (d != 0 && now >= d && now >= r->resignalNs) {
      why = SyncRun::kTimeout;
      // Again in a while if it is still running then (the signal can land
      // just before KVM_RUN), but never in a loop: a run slow to return
      // would be flooded with signals, and on one CPU starved.
      r->resignalNs = now + kResignalNs;
    } else if (now >= r->tickNs) {
      why = SyncRun::kTick;
      r->tickNs = now + kTickNs;
    }
    if (why == SyncRun::kNone) return;
    int signo = KickSignal();  // before the run is held: it takes a lock
    // Hold the run until the signal is sent, unless it ended meanwhile.
    do {
      if (!InSyncRun(bits)) return;
    } while (!r->bits->compare_exchange_weak(bits, bits | runbits::kWatching | runbits::kSignalled,
                                             std::memory_order_seq_cst));
    // Still the run it looked at: a newer one has its own deadline.
    if (r->gen.load(std::memory_order_seq_cst) == gen) {
      int none = SyncRun::kNone;
      r->reason.compare_exchange_strong(none, why);
      SetImmediateExit(r->run, true);
      pthread_kill(r->thread.load(std::memory_order_relaxed), signo);
    }
    r->bits->fetch_and(~uint32_t{runbits::kWatching}, std::memory_order_seq_cst);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SyncRun*> runs_;
  bool started_ = false;
  bool wake_ = false;  // a run wants the watchdog to look now
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

int WatchAdd(SyncRun* r) { return TheWatchdog().Add(r); }
void WatchRemove(SyncRun* r) { TheWatchdog().Remove(r); }
namespace watch {
std::atomic<bool> asleep{false};
std::atomic<int64_t> wakeNs{0};
void Wake() { TheWatchdog().Wake(); }
}  // namespace watch

}  // namespace nodekvm
