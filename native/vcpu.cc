#include "vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <system_error>
#include <unordered_map>

#include "addon.h"
#include "cpuid.h"
#include "errors.h"
#include "kick.h"
#include "vm.h"

namespace nodekvm {

namespace {

// Handles of live vCPU cores, for kickVcpu() from any thread. A core
// removes itself under the lock before it goes, so a kick never reaches a
// destroyed one.
std::mutex gCoresMu;
std::unordered_map<uint64_t, VcpuCore*> gCores;
uint64_t gNextHandle = 1;

// Whether JavaScript can still run in this environment: false once
// worker.terminate() or process.exit() began tearing it down.
bool EnvAlive(Napi::Env env) {
  napi_value global;
  napi_value result;
  if (napi_get_global(env, &global) != napi_ok) return false;
  return napi_call_function(env, global, Data(env).noop.Value(), 0, nullptr, &result) == napi_ok;
}

struct PendingVcpu {
  std::shared_ptr<VcpuCore> core;
  uint32_t id;
};

using RegField = __u64 kvm_regs::*;
const std::pair<const char*, RegField> kRegs[] = {
    {"rax", &kvm_regs::rax}, {"rbx", &kvm_regs::rbx}, {"rcx", &kvm_regs::rcx},
    {"rdx", &kvm_regs::rdx}, {"rsi", &kvm_regs::rsi}, {"rdi", &kvm_regs::rdi},
    {"rsp", &kvm_regs::rsp}, {"rbp", &kvm_regs::rbp}, {"r8", &kvm_regs::r8},
    {"r9", &kvm_regs::r9},   {"r10", &kvm_regs::r10}, {"r11", &kvm_regs::r11},
    {"r12", &kvm_regs::r12}, {"r13", &kvm_regs::r13}, {"r14", &kvm_regs::r14},
    {"r15", &kvm_regs::r15}, {"rip", &kvm_regs::rip}, {"rflags", &kvm_regs::rflags},
};

using SegField = kvm_segment kvm_sregs::*;
const std::pair<const char*, SegField> kSegments[] = {
    {"cs", &kvm_sregs::cs}, {"ds", &kvm_sregs::ds}, {"es", &kvm_sregs::es},
    {"fs", &kvm_sregs::fs}, {"gs", &kvm_sregs::gs}, {"ss", &kvm_sregs::ss},
    {"tr", &kvm_sregs::tr}, {"ldt", &kvm_sregs::ldt},
};

using U8Field = __u8 kvm_segment::*;
const std::pair<const char*, U8Field> kSegmentBits[] = {
    {"type", &kvm_segment::type}, {"present", &kvm_segment::present},
    {"dpl", &kvm_segment::dpl},   {"db", &kvm_segment::db},
    {"s", &kvm_segment::s},       {"l", &kvm_segment::l},
    {"g", &kvm_segment::g},       {"avl", &kvm_segment::avl},
    {"unusable", &kvm_segment::unusable},
};

using CrField = __u64 kvm_sregs::*;
const std::pair<const char*, CrField> kControl[] = {
    {"cr0", &kvm_sregs::cr0}, {"cr2", &kvm_sregs::cr2},   {"cr3", &kvm_sregs::cr3},
    {"cr4", &kvm_sregs::cr4}, {"cr8", &kvm_sregs::cr8},   {"efer", &kvm_sregs::efer},
    {"apicBase", &kvm_sregs::apic_base},
};

uint32_t ToU32(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a number");
  return v.As<Napi::Number>().Uint32Value();
}

Napi::Object SegmentToJs(Napi::Env env, const kvm_segment& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(s.base)));
  o.Set("limit", Napi::Number::New(env, s.limit));
  o.Set("selector", Napi::Number::New(env, s.selector));
  for (const auto& [name, field] : kSegmentBits) o.Set(name, Napi::Number::New(env, s.*field));
  return o;
}

void SegmentFromJs(const Napi::Object& o, kvm_segment& s) {
  if (o.Has("base")) s.base = ToU64(o.Get("base"), "segment base");
  if (o.Has("limit")) s.limit = ToU32(o.Get("limit"), "segment limit");
  if (o.Has("selector")) s.selector = static_cast<__u16>(ToU32(o.Get("selector"), "selector"));
  for (const auto& [name, field] : kSegmentBits) {
    if (o.Has(name)) s.*field = static_cast<__u8>(ToU32(o.Get(name), name));
  }
}

Napi::Object DtableToJs(Napi::Env env, const kvm_dtable& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(t.base)));
  o.Set("limit", Napi::Number::New(env, t.limit));
  return o;
}

void DtableFromJs(const Napi::Object& o, kvm_dtable& t) {
  if (o.Has("base")) t.base = ToU64(o.Get("base"), "table base");
  if (o.Has("limit")) t.limit = static_cast<__u16>(ToU32(o.Get("limit"), "table limit"));
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, const char* what) {
  if (!info[0].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an object");
  return info[0].As<Napi::Object>();
}

}  // namespace

// ---- VcpuCore ----

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

int VcpuCore::RunOnce(bool* kicked) {
  {
    std::lock_guard<std::mutex> lock(runMu_);
    inRun_ = true;
    runner_ = pthread_self();
    // A kick that came before entry must still end this run.
    kicked_ = kickPending_;
    run()->immediate_exit = kickPending_ ? 1 : 0;
    kickPending_ = false;
  }
  int r = ::ioctl(fd_.get(), KVM_RUN, 0);
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

// ---- Vcpu ----

Napi::Function Vcpu::Define(Napi::Env env) {
  return DefineClass(env, "Vcpu",
                     {
                         InstanceMethod<&Vcpu::Run>("run"),
                         InstanceMethod<&Vcpu::RunAsync>("runAsync"),
                         InstanceMethod<&Vcpu::Kick>("kick"),
                         InstanceMethod<&Vcpu::GetRegs>("getRegs"),
                         InstanceMethod<&Vcpu::SetRegs>("setRegs"),
                         InstanceMethod<&Vcpu::GetSregs>("getSregs"),
                         InstanceMethod<&Vcpu::SetSregs>("setSregs"),
                         InstanceMethod<&Vcpu::SetCpuid>("setCpuid"),
                         InstanceMethod<&Vcpu::Translate>("translate"),
                         InstanceMethod<&Vcpu::SetGuestDebug>("setGuestDebug"),
                         InstanceMethod<&Vcpu::GetStatsFd>("getStatsFd"),
                         InstanceMethod<&Vcpu::Close>("close"),
                         InstanceAccessor<&Vcpu::GetRunBuffer>("runBuffer"),
                         InstanceAccessor<&Vcpu::GetId>("id"),
                         InstanceAccessor<&Vcpu::GetFd>("fd"),
                         InstanceAccessor<&Vcpu::GetRunning>("running"),
                         InstanceAccessor<&Vcpu::GetKickHandle>("kickHandle"),
                     });
}

Napi::Object Vcpu::NewInstance(Napi::Env env, Napi::Object vm, std::shared_ptr<VcpuCore> core,
                               uint32_t id) {
  PendingVcpu pending{std::move(core), id};
  return Data(env).vcpuClass.New({Napi::External<PendingVcpu>::New(env, &pending), vm});
}

Vcpu::Vcpu(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Vcpu>(info) {
  if (!info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "vCPUs are created with vm.createVcpu()");
  }
  auto* pending = info[0].As<Napi::External<PendingVcpu>>().Data();
  core_ = std::move(pending->core);
  id_ = pending->id;
  Napi::Object vm = info[1].As<Napi::Object>();
  vm_ = Vm::Unwrap(vm);
  vmRef_ = Napi::Persistent(vm);
}

Vcpu::~Vcpu() {
  core_->MarkCollected();
  core_->Shutdown();
}

int Vcpu::Fd(const char* syscall, bool forRun) {
  if (core_->closed()) throw ClosedError(Env(), "vCPU", syscall);
  if (core_->busy()) {
    throw SysError(Env(), EBUSY, syscall,
                   forRun ? "a runAsync() is still in flight on this vCPU"
                          : "the vCPU is running (runAsync); await it or kick() it first");
  }
  return core_->fd();
}

// run(timeoutMs?): KVM_RUN on this thread until an exit, a kick from
// another thread (kickVcpu), the deadline, or the environment's teardown.
Napi::Value Vcpu::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd("KVM_RUN", true);
  int64_t deadline = 0;
  if (info[0].IsNumber()) {
    double ms = info[0].As<Napi::Number>().DoubleValue();
    if (!(ms >= 0 && ms <= 2147483647.0)) throw Napi::RangeError::New(env, "timeoutMs out of range");
    deadline = MonotonicNs() + static_cast<int64_t>(ms * 1e6);
  }
  vm_->ValidateSlots(env);
  EnsureKickHandler(env);
  UnblockKickSignal();
  SyncRun watch{pthread_self(), core_->run(), deadline};
  WatchBegin(&watch);
  struct Guard {
    SyncRun* w;
    ~Guard() { WatchEnd(w); }
  } guard{&watch};
  for (;;) {
    bool kicked = false;
    if (core_->RunOnce(&kicked) >= 0) break;
    int err = errno;
    if (err != EINTR) throw SysError(env, err, "KVM_RUN");
    if (kicked || (deadline != 0 && MonotonicNs() >= deadline)) break;
    if (watch.reason.exchange(SyncRun::kNone) != SyncRun::kTick) break;  // someone else's signal
    // A tick from the watchdog: go on unless this environment is going away.
    if (!EnvAlive(env)) return Napi::Value();
  }
  return Napi::Number::New(env, core_->run()->exit_reason);
}

Napi::Value Vcpu::RunAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd("KVM_RUN", true);
  vm_->ValidateSlots(env);
  return core_->StartAsync(env);
}

Napi::Value Vcpu::Kick(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !core_->closed() && core_->Kick());
}

Napi::Value Vcpu::GetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_regs regs{};
  if (IoctlRetry(Fd("KVM_GET_REGS"), KVM_GET_REGS, reinterpret_cast<unsigned long>(&regs)) < 0) {
    throw SysError(env, errno, "KVM_GET_REGS");
  }
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, field] : kRegs) o.Set(name, Napi::BigInt::New(env, static_cast<uint64_t>(regs.*field)));
  return o;
}

// Fields left out keep their current values.
void Vcpu::SetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = ObjectArg(info, "regs");
  int fd = Fd("KVM_SET_REGS");
  kvm_regs regs{};
  if (IoctlRetry(fd, KVM_GET_REGS, reinterpret_cast<unsigned long>(&regs)) < 0) {
    throw SysError(env, errno, "KVM_GET_REGS");
  }
  for (const auto& [name, field] : kRegs) {
    if (o.Has(name)) regs.*field = ToU64(o.Get(name), name);
  }
  if (IoctlRetry(fd, KVM_SET_REGS, reinterpret_cast<unsigned long>(&regs)) < 0) {
    throw SysError(env, errno, "KVM_SET_REGS");
  }
}

Napi::Value Vcpu::GetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_sregs s{};
  if (IoctlRetry(Fd("KVM_GET_SREGS"), KVM_GET_SREGS, reinterpret_cast<unsigned long>(&s)) < 0) {
    throw SysError(env, errno, "KVM_GET_SREGS");
  }
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [name, field] : kSegments) o.Set(name, SegmentToJs(env, s.*field));
  o.Set("gdt", DtableToJs(env, s.gdt));
  o.Set("idt", DtableToJs(env, s.idt));
  for (const auto& [name, field] : kControl) o.Set(name, Napi::BigInt::New(env, static_cast<uint64_t>(s.*field)));
  Napi::Array bitmap = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; i++) bitmap.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(s.interrupt_bitmap[i])));
  o.Set("interruptBitmap", bitmap);
  return o;
}

// Like setRegs, a partial object updates only what it names, down to single
// segment fields.
void Vcpu::SetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = ObjectArg(info, "sregs");
  int fd = Fd("KVM_SET_SREGS");
  kvm_sregs s{};
  if (IoctlRetry(fd, KVM_GET_SREGS, reinterpret_cast<unsigned long>(&s)) < 0) {
    throw SysError(env, errno, "KVM_GET_SREGS");
  }
  for (const auto& [name, field] : kSegments) {
    if (o.Has(name)) SegmentFromJs(o.Get(name).As<Napi::Object>(), s.*field);
  }
  if (o.Has("gdt")) DtableFromJs(o.Get("gdt").As<Napi::Object>(), s.gdt);
  if (o.Has("idt")) DtableFromJs(o.Get("idt").As<Napi::Object>(), s.idt);
  for (const auto& [name, field] : kControl) {
    if (o.Has(name)) s.*field = ToU64(o.Get(name), name);
  }
  if (o.Has("interruptBitmap")) {
    Napi::Array bitmap = o.Get("interruptBitmap").As<Napi::Array>();
    for (uint32_t i = 0; i < 4 && i < bitmap.Length(); i++) s.interrupt_bitmap[i] = ToU64(bitmap.Get(i), "interruptBitmap");
  }
  if (IoctlRetry(fd, KVM_SET_SREGS, reinterpret_cast<unsigned long>(&s)) < 0) {
    throw SysError(env, errno, "KVM_SET_SREGS");
  }
}

// setCpuid(entries): KVM_SET_CPUID2 with objects shaped like
// kvm.getSupportedCpuid()'s.
void Vcpu::SetCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "CPUID entries must be an array");
  Napi::Array entries = info[0].As<Napi::Array>();
  uint32_t n = entries.Length();
  CpuidBuffer cpuid(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Object o = entries.Get(i).As<Napi::Object>();
    kvm_cpuid_entry2& e = cpuid.entries()[i];
    e.function = ToU32(o.Get("function"), "function");
    e.index = ToU32(o.Get("index"), "index");
    e.flags = ToU32(o.Get("flags"), "flags");
    e.eax = ToU32(o.Get("eax"), "eax");
    e.ebx = ToU32(o.Get("ebx"), "ebx");
    e.ecx = ToU32(o.Get("ecx"), "ecx");
    e.edx = ToU32(o.Get("edx"), "edx");
  }
  if (IoctlRetry(Fd("KVM_SET_CPUID2"), kSetCpuid2, cpuid.arg()) < 0) {
    throw SysError(env, errno, "KVM_SET_CPUID2");
  }
}

// translate(linearAddress): KVM_TRANSLATE through the guest's page tables.
Napi::Value Vcpu::Translate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_translation t{};
  t.linear_address = ToU64(info[0], "address");
  if (IoctlRetry(Fd("KVM_TRANSLATE"), KVM_TRANSLATE, reinterpret_cast<unsigned long>(&t)) < 0) {
    throw SysError(env, errno, "KVM_TRANSLATE");
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("physicalAddress", Napi::BigInt::New(env, static_cast<uint64_t>(t.physical_address)));
  o.Set("valid", Napi::Boolean::New(env, t.valid != 0));
  o.Set("writeable", Napi::Boolean::New(env, t.writeable != 0));
  o.Set("usermode", Napi::Boolean::New(env, t.usermode != 0));
  return o;
}

// setGuestDebug(control, debugregs[8]): KVM_SET_GUEST_DEBUG.
void Vcpu::SetGuestDebug(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_guest_debug dbg{};
  dbg.control = ToU32(info[0], "control");
  if (info[1].IsArray()) {
    Napi::Array regs = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < 8 && i < regs.Length(); i++) dbg.arch.debugreg[i] = ToU64(regs.Get(i), "debugreg");
  }
  if (IoctlRetry(Fd("KVM_SET_GUEST_DEBUG"), KVM_SET_GUEST_DEBUG, reinterpret_cast<unsigned long>(&dbg)) < 0) {
    throw SysError(env, errno, "KVM_SET_GUEST_DEBUG");
  }
}

// getStatsFd(): KVM_GET_STATS_FD on the vCPU. The caller owns the fd.
Napi::Value Vcpu::GetStatsFd(const Napi::CallbackInfo& info) {
  int r = IoctlRetry(Fd("KVM_GET_STATS_FD"), KVM_GET_STATS_FD, 0);
  if (r < 0) throw SysError(info.Env(), errno, "KVM_GET_STATS_FD");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Vcpu::GetRunBuffer(const Napi::CallbackInfo& info) {
  if (core_->closed()) throw ClosedError(info.Env(), "vCPU", "mmap");
  return core_->RunBuffer(info.Env());
}

Napi::Value Vcpu::GetId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }

Napi::Value Vcpu::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), core_->fd()); }

Napi::Value Vcpu::GetRunning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), core_->busy());
}

Napi::Value Vcpu::GetKickHandle(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), core_->handle());
}

void Vcpu::Close(const Napi::CallbackInfo&) { core_->Shutdown(); }

// Offsets into struct kvm_run, from the kernel header this addon was built
// with, so that lib/exits.ts decodes exits without hard-coding the ABI.
Napi::Object Vcpu::RunLayout(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* name, size_t v) { o.Set(name, Napi::Number::New(env, static_cast<double>(v))); };
  set("immediateExit", offsetof(kvm_run, immediate_exit));
  set("exitReason", offsetof(kvm_run, exit_reason));
  set("ioDirection", offsetof(kvm_run, io.direction));
  set("ioSize", offsetof(kvm_run, io.size));
  set("ioPort", offsetof(kvm_run, io.port));
  set("ioCount", offsetof(kvm_run, io.count));
  set("ioDataOffset", offsetof(kvm_run, io.data_offset));
  set("mmioPhysAddr", offsetof(kvm_run, mmio.phys_addr));
  set("mmioData", offsetof(kvm_run, mmio.data));
  set("mmioLen", offsetof(kvm_run, mmio.len));
  set("mmioIsWrite", offsetof(kvm_run, mmio.is_write));
  set("failEntryReason", offsetof(kvm_run, fail_entry.hardware_entry_failure_reason));
  set("failEntryCpu", offsetof(kvm_run, fail_entry.cpu));
  set("hwExitReason", offsetof(kvm_run, hw.hardware_exit_reason));
  set("exException", offsetof(kvm_run, ex.exception));
  set("exErrorCode", offsetof(kvm_run, ex.error_code));
  set("internalSuberror", offsetof(kvm_run, internal.suberror));
  set("internalNdata", offsetof(kvm_run, internal.ndata));
  set("internalData", offsetof(kvm_run, internal.data));
  set("debugException", offsetof(kvm_run, debug.arch.exception));
  set("debugPc", offsetof(kvm_run, debug.arch.pc));
  set("debugDr6", offsetof(kvm_run, debug.arch.dr6));
  set("debugDr7", offsetof(kvm_run, debug.arch.dr7));
  set("systemEventType", offsetof(kvm_run, system_event.type));
  set("systemEventNdata", offsetof(kvm_run, system_event.ndata));
  set("systemEventData", offsetof(kvm_run, system_event.data));
  return o;
}

}  // namespace nodekvm
