// Interrupting KVM_RUN: the kick signal, and the watchdog that ends sync
// runs on a deadline or when their JavaScript environment is going away.
#pragma once

#include <linux/kvm.h>
#include <napi.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>

namespace nodekvm {

// The signal that interrupts KVM_RUN (default SIGRTMIN+3).
int KickSignal();
// Chooses the kick signal; only before the handler is installed.
void SetKickSignal(Napi::Env env, int signo);
// Installs the do-nothing handler once per process; refuses (EBUSY) to
// replace a handler someone else installed on that signal.
void EnsureKickHandler(Napi::Env env);
// Lets the kick signal through on the calling thread (workers may block it).
void UnblockKickSignal();

// A vCPU's synchronous runs, as the watchdog sees them. Added to the
// watchdog once and marked active per run with atomics: a run that exits
// within microseconds takes no lock and wakes no thread.
struct SyncRun {
  enum Reason : int { kNone = 0, kTick = 1, kTimeout = 2 };
  enum State : int { kIdle = 0, kActive = 1, kSignalling = 2 };
  // The owner's per-run fields first, in one cache line (see VcpuCore).
  std::atomic<int> state{kIdle};
  std::atomic<int> reason{kNone};
  std::atomic<uint64_t> gen{0};  // counts runs: one long run is told from many short ones
  std::atomic<int64_t> deadlineNs{0};  // CLOCK_MONOTONIC; 0: none
  std::atomic<pthread_t> thread{};
  bool added = false;  // owner's side: WatchAdd() was called
  kvm_run* run = nullptr;
  // The watchdog's own: the run it saw last, when it ticks it, and when it
  // signals a run past its deadline again.
  uint64_t seenGen = 0;
  int64_t tickNs = 0;
  int64_t resignalNs = 0;
};

int64_t MonotonicNs();

// A process-wide thread that signals sync runs which passed their deadline
// or have run for a while (so that they can check whether their
// environment is terminating: worker.terminate(), process.exit()).
// WatchAdd() once before the first run: 0, or the errno of a watchdog
// thread that could not start (r is then not added). After WatchRemove()
// returns, the watchdog no longer touches r or its kvm_run.
int WatchAdd(SyncRun* r);
void WatchRemove(SyncRun* r);
namespace watch {
// How late a deadline may be noticed, rather than wake the watchdog.
constexpr int64_t kSlackNs = 50'000;
extern std::atomic<bool> asleep;      // until a run begins
extern std::atomic<int64_t> wakeNs;   // when it looks next (INT64_MAX: deciding)
void Wake();
}  // namespace watch

// Around each run, on the thread that runs it; inline, as they run once
// per exit.
inline void WatchBegin(SyncRun* r, int64_t deadlineNs) {
  r->deadlineNs.store(deadlineNs, std::memory_order_relaxed);
  r->reason.store(SyncRun::kNone, std::memory_order_relaxed);
  r->thread.store(pthread_self(), std::memory_order_relaxed);
  r->gen.store(r->gen.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  r->state.store(SyncRun::kActive, std::memory_order_seq_cst);
  // Waking the watchdog costs a futex call and a thread wake-up, as much
  // as a short run: only when it sleeps for good, or would look well past
  // this run's deadline. (This stores, then loads; the watchdog does the
  // reverse, so one of the two sees the other.)
  if (watch::asleep.load(std::memory_order_seq_cst) ||
      (deadlineNs != 0 && deadlineNs + watch::kSlackNs < watch::wakeNs.load(std::memory_order_seq_cst))) {
    watch::Wake();
  }
}

inline void WatchEnd(SyncRun* r) {
  // A signal being sent to this run lands before it ends: the thread may
  // go on to other system calls, which must not see it.
  for (;;) {
    int expected = SyncRun::kActive;
    if (r->state.compare_exchange_weak(expected, SyncRun::kIdle, std::memory_order_seq_cst)) return;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
}

}  // namespace nodekvm
