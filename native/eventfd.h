// An eventfd that JavaScript can write (inject), read, and await without
// blocking the event loop: wait() polls the fd with libuv's uv_poll_t (no
// threadpool), and only while a wait is pending, so an idle EventFd does
// not keep the process alive. KVM_IOEVENTFD signals it, KVM_IRQFD reads it.
#pragma once

#include <napi.h>
#include <uv.h>

#include <deque>
#include <optional>
#include <string>

#include "base/fd.h"

namespace nodekvm {

constexpr napi_type_tag kEventFdTag = {0x6e6f64656b766d01ULL, 0x4576656e74000005ULL};

class EventFd : public Napi::ObjectWrap<EventFd> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EventFd(const Napi::CallbackInfo& info);
  ~EventFd() override;

  // The fd of the EventFd object `v` (tagged), for KVM_IOEVENTFD/KVM_IRQFD;
  // a TypeError for anything else, a KvmError (EBADF) once it is closed.
  static int FdOf(const Napi::Value& v, const std::string& name, const char* syscall);

 private:
  // The poll handle lives on the heap: libuv frees it in its close callback,
  // which may come after this object is gone (a finalizer, the teardown).
  struct PollBox {
    uv_poll_t poll;
    EventFd* owner;                             // null once detached
    napi_async_cleanup_hook_handle hook;        // the env's teardown waits for the close
  };
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnTeardown(napi_async_cleanup_hook_handle hook, void* arg);
  static void OnClosed(uv_handle_t* handle);

  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Wait(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetPending(const Napi::CallbackInfo& info);

  int Fd(const char* syscall);
  void StartPolling(Napi::Env env);
  void StopPolling();
  void CloseBox();
  void Signalled(int status);
  void CloseNow(bool fromTeardown);

  UniqueFd fd_;
  PollBox* box_ = nullptr;  // created on the first wait(), closed with the fd
  bool polling_ = false;    // uv_poll_start'ed; this object is Ref'd meanwhile
  std::deque<Napi::Promise::Deferred> waiters_;
  std::optional<Napi::AsyncContext> async_;  // so that promise reactions run after a poll callback
};

}  // namespace nodekvm
