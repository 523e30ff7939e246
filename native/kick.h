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

// One synchronous KVM_RUN loop in progress, as the watchdog sees it.
struct SyncRun {
  enum Reason : int { kNone = 0, kTick = 1, kTimeout = 2 };
  pthread_t thread;
  kvm_run* run;
  int64_t deadlineNs;  // CLOCK_MONOTONIC; 0: none
  std::atomic<int> reason{kNone};
  int64_t tickNs = 0;  // the next tick, set by WatchBegin()
};

int64_t MonotonicNs();

// A process-wide thread that signals sync runs which passed their deadline
// or have run for a while (so that they can check whether their
// environment is terminating: worker.terminate(), process.exit()).
void WatchBegin(SyncRun* r);
void WatchEnd(SyncRun* r);

}  // namespace nodekvm
