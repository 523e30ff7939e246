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

// A vCPU's run in flight, as everyone who may end it sees it: one atomic
// word. Its runner sets kInRun (and kSync for a sync run) before KVM_RUN
// and clears them after, once neither a kicker (kKicking) nor the
// watchdog (kWatching) is between seeing the run and signalling it, and
// takes any signal they sent (kSignalled) before it returns: a signal
// never outlives the run it was meant for. One atomic operation on each
// side of KVM_RUN, as it is on the exit's round trip.
// kKicked: a kick ended (or will end) this run. kPending: a kick for the
// next run. kBetween: a sync run between two KVM_RUNs (it went on after
// EINTR); a kick then ends its next one.
namespace runbits {
enum : uint32_t {
  kInRun = 1,
  kSync = 2,
  kKicking = 4,
  kWatching = 8,
  kKicked = 16,
  kPending = 32,
  kSignalled = 64,
  kBetween = 128,
};
}

// KVM reads it at entry while the runner, kickers and the watchdog write
// it: an atomic byte store.
inline void SetImmediateExit(kvm_run* run, bool on) {
  __atomic_store_n(&run->immediate_exit, on ? 1 : 0, __ATOMIC_RELAXED);
}

// A vCPU's synchronous runs, as the watchdog sees them. Added to the
// watchdog once; a run that exits within microseconds takes no lock and
// wakes no thread.
struct SyncRun {
  enum Reason : int { kNone = 0, kTick = 1, kTimeout = 2 };
  // The owner's per-run fields first (see VcpuCore).
  std::atomic<int> reason{kNone};
  std::atomic<uint64_t> gen{0};  // counts runs: one long run is told from many short ones
  std::atomic<int64_t> deadlineNs{0};  // CLOCK_MONOTONIC; 0: none
  std::atomic<pthread_t> thread{};
  std::atomic<uint32_t>* bits = nullptr;  // the vCPU's run word (runbits)
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

// A sync run's fields, before its KVM_RUNs (VcpuCore::RunOnce publishes
// them with kSync, then calls WatchNotice); inline, as they run once per
// exit.
inline void WatchBegin(SyncRun* r, int64_t deadlineNs) {
  r->deadlineNs.store(deadlineNs, std::memory_order_relaxed);
  r->reason.store(SyncRun::kNone, std::memory_order_relaxed);
  r->thread.store(pthread_self(), std::memory_order_relaxed);
  // Last, released: the watchdog reads the generation, then its deadline.
  r->gen.store(r->gen.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

// After kSync is set. Waking the watchdog costs a futex call and a thread
// wake-up, as much as a short run: only when it sleeps for good, or would
// look well past this run's deadline. (The run stores its word, then
// loads these; the watchdog does the reverse, so one of the two sees the
// other.)
inline void WatchNotice(const SyncRun* r) {
  int64_t deadlineNs = r->deadlineNs.load(std::memory_order_relaxed);
  if (watch::asleep.load(std::memory_order_seq_cst) ||
      (deadlineNs != 0 && deadlineNs + watch::kSlackNs < watch::wakeNs.load(std::memory_order_seq_cst))) {
    watch::Wake();
  }
}

}  // namespace nodekvm
