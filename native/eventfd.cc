#include "eventfd.h"

#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "base/args.h"
#include "base/errors.h"
#include "base/ioctl.h"
#include "vm.h"

namespace nodekvm {

Napi::Function EventFd::Define(Napi::Env env) {
  return DefineClass(env, "EventFd",
                     {
                         InstanceMethod<&EventFd::Write>("write"),
                         InstanceMethod<&EventFd::Read>("read"),
                         InstanceMethod<&EventFd::Wait>("wait"),
                         InstanceMethod<&EventFd::Close>("close"),
                         InstanceAccessor<&EventFd::GetFd>("fd"),
                         InstanceAccessor<&EventFd::GetPending>("pending"),
                     });
}

EventFd::EventFd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventFd>(info) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw SysError(info.Env(), errno, "eventfd");
  fd_.Reset(fd);
  info.This().As<Napi::Object>().TypeTag(&kEventFdTag);
}

EventFd::~EventFd() {
  // Collected (or finalized at teardown): never while a wait is pending,
  // since polling holds a strong reference.
  polling_ = false;
  CloseBox();
  fd_.Reset();
}

int EventFd::FdOf(const Napi::Value& v, const std::string& name, const char* syscall) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kEventFdTag)) {
    throw ArgTypeError(v.Env(), name, "an instance of EventFd");
  }
  return Unwrap(v.As<Napi::Object>())->Fd(syscall);
}

int EventFd::Fd(const char* syscall) {
  if (!fd_.valid()) throw ClosedError(Env(), "the EventFd", syscall);
  return fd_.get();
}

// write(value): adds value (1 .. 2^64 - 2) to the counter; EAGAIN when it
// would overflow.
Napi::Value EventFd::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("write");
  uint64_t value = ReadU64(info[0], "value", UINT64_MAX - 1);
  if (::write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) throw SysError(env, errno, "write", "eventfd");
  return env.Undefined();
}

// read(): the counter (reset to 0), or undefined when it is 0.
Napi::Value EventFd::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("read");
  if (!waiters_.empty()) return env.Undefined();  // the pending wait() gets it first
  uint64_t value = 0;
  if (::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value)) return Napi::BigInt::New(env, value);
  if (errno == EAGAIN) return env.Undefined();
  throw SysError(env, errno, "read", "eventfd");
}

// wait(): a promise of the counter once it is non-zero (reading it resets
// it). Waits are served in order, one read each.
Napi::Value EventFd::Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("wait");
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  if (waiters_.empty()) {
    uint64_t value = 0;
    if (::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value)) {
      d.Resolve(Napi::BigInt::New(env, value));
      return d.Promise();
    }
    if (errno != EAGAIN) throw SysError(env, errno, "read", "eventfd");
  }
  StartPolling(env);
  waiters_.push_back(d);
  return d.Promise();
}

void EventFd::Close(const Napi::CallbackInfo&) { CloseNow(false); }

Napi::Value EventFd::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }

Napi::Value EventFd::GetPending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(waiters_.size()));
}

void EventFd::StartPolling(Napi::Env env) {
  if (polling_) return;
  if (box_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw SysError(env, EINVAL, "napi_get_uv_event_loop");
    auto box = std::make_unique<PollBox>();
    box->owner = this;
    box->hook = nullptr;
    int r = uv_poll_init(loop, &box->poll, fd_.get());
    if (r < 0) throw SysError(env, -r, "uv_poll_init", "eventfd");
    box->poll.data = box.get();
    // From here on only libuv frees the box (OnClosed).
    PollBox* raw = box.release();
    if (napi_add_async_cleanup_hook(env, &EventFd::OnTeardown, raw, &raw->hook) != napi_ok) {
      raw->hook = nullptr;
      raw->owner = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(&raw->poll), &EventFd::OnClosed);
      throw SysError(env, EINVAL, "napi_add_async_cleanup_hook");
    }
    box_ = raw;
  }
  int r = uv_poll_start(&box_->poll, UV_READABLE, &EventFd::OnPoll);
  if (r < 0) throw SysError(env, -r, "uv_poll_start", "eventfd");
  if (!async_) async_.emplace(env, "node-kvm:EventFd");
  polling_ = true;
  Ref();  // a pending wait keeps this object (and the event loop) alive
}

void EventFd::StopPolling() {
  if (!polling_) return;
  polling_ = false;
  if (box_ != nullptr) uv_poll_stop(&box_->poll);
  Unref();
}

void EventFd::CloseBox() {
  if (box_ == nullptr) return;
  box_->owner = nullptr;
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&box_->poll);
  if (!uv_is_closing(h)) uv_close(h, &EventFd::OnClosed);
  box_ = nullptr;
}

void EventFd::OnClosed(uv_handle_t* handle) {
  std::unique_ptr<PollBox> box(static_cast<PollBox*>(handle->data));
  if (box->hook != nullptr) napi_remove_async_cleanup_hook(box->hook);
}

// The environment is going away (worker.terminate(), process exit): close
// the handle; the teardown waits until libuv has (OnClosed).
void EventFd::OnTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* box = static_cast<PollBox*>(arg);
  if (box->owner != nullptr) box->owner->CloseNow(true);  // detaches and closes the box
}

void EventFd::OnPoll(uv_poll_t* handle, int status, int) {
  auto* box = static_cast<PollBox*>(handle->data);
  if (box->owner != nullptr) box->owner->Signalled(status);
}

void EventFd::Signalled(int status) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  // Closing this scope runs the microtasks: the awaiting code goes on now.
  Napi::CallbackScope callbackScope(env, *async_);
  try {
    int err = status < 0 ? -status : 0;
    if (err == 0 && !waiters_.empty()) {
      uint64_t value = 0;
      if (::read(fd_.get(), &value, sizeof value) == static_cast<ssize_t>(sizeof value)) {
        Napi::Promise::Deferred d = waiters_.front();
        waiters_.pop_front();
        d.Resolve(Napi::BigInt::New(env, value));
      } else if (errno != EAGAIN) {
        err = errno;
      }
    }
    if (err != 0) {
      std::deque<Napi::Promise::Deferred> failed;
      failed.swap(waiters_);
      for (auto& d : failed) d.Reject(SysError(env, err, "uv_poll", "eventfd").Value());
    }
  } catch (const Napi::Error&) {
    // Nothing to throw into from a poll callback.
  }
  if (waiters_.empty()) StopPolling();
}

void EventFd::CloseNow(bool fromTeardown) {
  if (polling_) {
    polling_ = false;
    if (box_ != nullptr) uv_poll_stop(&box_->poll);
    if (!fromTeardown) Unref();
  }
  std::deque<Napi::Promise::Deferred> pending;
  pending.swap(waiters_);
  if (!fromTeardown && fd_.valid()) {
    Napi::Env env = Env();
    for (auto& d : pending) d.Reject(SysError(env, EBADF, "wait", "the EventFd was closed while a wait() was pending").Value());
  }
  CloseBox();  // before the fd: libuv stops watching it first
  fd_.Reset();
}

// ioeventfd(eventfd, address, length, flags, datamatch): KVM_IOEVENTFD.
// flags: KVM_IOEVENTFD_FLAG_DATAMATCH | _PIO | _DEASSIGN.
void Vm::IoEventFd(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_IOEVENTFD");
  kvm_ioeventfd a{};
  a.fd = EventFd::FdOf(info[0], "eventfd", "KVM_IOEVENTFD");
  a.addr = ReadU64(info[1], "address");
  int64_t len = ReadInt(info[2], "length", 0, 8);
  if (len == 3 || (len > 4 && len < 8)) throw ArgValueError(env, "length", "must be 0, 1, 2, 4 or 8");
  a.len = static_cast<__u32>(len);
  a.flags = ReadU32(info[3], "flags");
  constexpr uint32_t kKnown = KVM_IOEVENTFD_FLAG_DATAMATCH | KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (a.flags & ~kKnown) throw ArgValueError(env, "flags", "must combine DATAMATCH, PIO and DEASSIGN only");
  a.datamatch = ReadU64(info[4], "datamatch");
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_IOEVENTFD), &a,
               std::string(a.flags & KVM_IOEVENTFD_FLAG_PIO ? "port " : "address ") + std::to_string(a.addr));
}

// irqfd(eventfd, gsi, flags, resampleEventfd?): KVM_IRQFD.
// flags: KVM_IRQFD_FLAG_DEASSIGN | _RESAMPLE.
void Vm::IrqFd(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_IRQFD");
  kvm_irqfd a{};
  a.fd = static_cast<__u32>(EventFd::FdOf(info[0], "eventfd", "KVM_IRQFD"));
  a.gsi = ReadU32(info[1], "gsi");
  a.flags = ReadU32(info[2], "flags");
  if (a.flags & ~(KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE)) {
    throw ArgValueError(env, "flags", "must combine DEASSIGN and RESAMPLE only");
  }
  if (a.flags & KVM_IRQFD_FLAG_RESAMPLE) a.resamplefd = static_cast<__u32>(EventFd::FdOf(info[3], "resample", "KVM_IRQFD"));
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_IRQFD), &a, "gsi " + std::to_string(a.gsi));
}

}  // namespace nodekvm
