#include "vcpu.h"

#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/addon.h"
#include "base/args.h"
#include "base/convert.h"
#include "base/errors.h"
#include "base/flex.h"
#include "base/ioctl.h"
#include "kick.h"
#include "state.h"
#include "vm.h"

namespace nodekvm {

namespace {

// Whether JavaScript can still run in this environment: false once
// worker.terminate() or process.exit() began tearing it down.
bool EnvAlive(Napi::Env env) {
  napi_value global;
  napi_value result;
  if (napi_get_global(env, &global) != napi_ok) return false;
  return napi_call_function(env, global, Data(env).noop.Value(), 0, nullptr, &result) == napi_ok;
}

}  // namespace

Napi::Object Vcpu::DefineFunctions(Napi::Env env) {
  RunTable* table = Data(env).runTable.get();
  Napi::Object o = Napi::Object::New(env);
  auto add = [&](const char* name, napi_callback cb) { AddSlotFunction(env, o, name, cb, table); };
  add("release", &ReleaseBySlot<Vcpu>);
  add("park", &CallBySlot<Vcpu, void, &Vcpu::Park>);
  add("unpark", &CallBySlot<Vcpu, void, &Vcpu::Unpark>);
  add("runAsync", &CallBySlot<Vcpu, Napi::Value, &Vcpu::RunAsync>);
  add("kick", &CallBySlot<Vcpu, Napi::Value, &Vcpu::Kick>);
  add("getRegs", &CallBySlot<Vcpu, void, &Vcpu::GetRegs>);
  add("setRegs", &CallBySlot<Vcpu, void, &Vcpu::SetRegs>);
  add("setCpuid", &CallBySlot<Vcpu, void, &Vcpu::SetCpuid>);
  add("translate", &CallBySlot<Vcpu, Napi::Value, &Vcpu::Translate>);
  add("setGuestDebug", &CallBySlot<Vcpu, void, &Vcpu::SetGuestDebug>);
  add("getStatsFd", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetStatsFd>);
  add("close", &CallBySlot<Vcpu, void, &Vcpu::Close>);
  add("runBuffer", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetRunBuffer>);
  add("id", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetId>);
  add("fd", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetFd>);
  add("running", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetRunning>);
  add("kickHandle", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetKickHandle>);
  add("getState", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetState>);
  add("setState", &CallBySlot<Vcpu, void, &Vcpu::SetState>);
  add("getNestedState", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetNestedState>);
  add("setNestedState", &CallBySlot<Vcpu, void, &Vcpu::SetNestedState>);
  add("getMsrs", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetMsrs>);
  add("setMsrs", &CallBySlot<Vcpu, Napi::Value, &Vcpu::SetMsrs>);
  add("getCpuid", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetCpuid>);
  add("getTscKhz", &CallBySlot<Vcpu, Napi::Value, &Vcpu::GetTscKhz>);
  add("setTscKhz", &CallBySlot<Vcpu, void, &Vcpu::SetTscKhz>);
  add("interrupt", &CallBySlot<Vcpu, void, &Vcpu::Interrupt>);
  add("nmi", &CallBySlot<Vcpu, void, &Vcpu::Nmi>);
  add("smi", &CallBySlot<Vcpu, void, &Vcpu::Smi>);
  add("enableCap", &CallBySlot<Vcpu, Napi::Value, &Vcpu::EnableCap>);
  add("setSyncRegs", &CallBySlot<Vcpu, void, &Vcpu::SetSyncRegs>);
  add("completePendingIo", &CallBySlot<Vcpu, void, &Vcpu::CompletePendingIo>);
  add("harvestDirtyRing", &CallBySlot<Vcpu, Napi::Value, &Vcpu::HarvestDirtyRing>);  // rings.cc
  return o;
}

Vcpu::Vcpu(Napi::Env env, std::shared_ptr<VcpuCore> core, uint32_t id, Vm* vm)
    : core_(std::move(core)), env_(env), vm_(vm), id_(id) {}

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

Napi::Function Vcpu::DefineRun(Napi::Env env) {
  auto& table = Data(env).runTable;
  napi_value fn;
  NAPI_THROW_IF_FAILED(env, napi_create_function(env, "runVcpu", NAPI_AUTO_LENGTH, &Vcpu::RunSlot, table.get(), &fn),
                       Napi::Function());
  return Napi::Function(env, fn);
}

// A plain Node-API callback rather than node-addon-api's wrapper: it runs
// once per exit, and each step it skips is one more cold cache line after
// the ~9 µs in the kernel.
napi_value Vcpu::RunSlot(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 2;
  napi_value argv[2];
  void* table;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &table) != napi_ok) return nullptr;
  try {
    // As every vCPU function reads its slot (base/table.h): 1.5 names none.
    Vcpu* vcpu = argc > 0 ? static_cast<const RunTable*>(table)->Find(SlotNumber(env, argv[0])) : nullptr;
    if (vcpu == nullptr) throw ArgTypeError(Napi::Env(env), "slot", "a vCPU's runSlot");
    napi_valuetype type = napi_undefined;
    if (argc > 1) napi_typeof(env, argv[1], &type);
    return vcpu->Run(env, type == napi_undefined ? nullptr : argv[1]);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

// runVcpu(slot, timeoutMs?): KVM_RUN on this thread until an exit, a kick from
// another thread (kickVcpu), the deadline, or the environment's teardown.
// Called once per exit: it takes no lock and wakes no thread unless a
// deadline needs the watchdog sooner than it would look. Returns the exit
// reason, or nullptr (undefined) when the environment is going away.
napi_value Vcpu::Run(napi_env rawEnv, napi_value timeoutMs) {
  Napi::Env env(rawEnv);
  Fd("KVM_RUN", true);
  int64_t deadline = timeoutMs == nullptr
                         ? 0
                         : MonotonicNs() + static_cast<int64_t>(ReadMs(Napi::Value(env, timeoutMs), "timeoutMs") * 1e6);
  if (core_->checkSlots()) vm_->ValidateSlots(env);
  SyncRun& watch = core_->syncRun();
  if (!watch.added) {
    // Once per vCPU: it runs on its environment's thread only.
    EnsureKickHandler(env);
    UnblockKickSignal();
    watch.run = core_->run();
    if (int err = WatchAdd(&watch)) throw SysError(env, err, "pthread_create", "the watchdog thread that ends sync runs");
    watch.added = true;
  }
  WatchBegin(&watch, deadline);
  struct Between {
    VcpuCore* core;
    bool on = false;
    ~Between() {
      if (on) core->EndBetween();
    }
  } between{core_.get()};
  for (;;) {
    bool kicked = false;
    int r = core_->RunOnce(&kicked, false, &watch);
    int err = errno;
    between.on = r < 0;
    if (r >= 0) break;
    if (err != EINTR) throw SysError(env, err, "KVM_RUN");
    if (kicked || (deadline != 0 && MonotonicNs() >= deadline)) break;
    int why = watch.reason.exchange(SyncRun::kNone);
    // Before its deadline a run goes on through an EINTR that was no kick:
    // some kernels return one with no signal delivered (io_uring task work
    // after a child process, seen with Node 22's libuv).
    if (why != SyncRun::kTick && deadline == 0) break;
    // A tick from the watchdog: go on unless this environment is going away.
    if (!EnvAlive(env)) return nullptr;
  }
  napi_value out;
  napi_create_uint32(rawEnv, core_->run()->exit_reason, &out);
  return out;
}

void Vcpu::Park(const Args&) {
  Fd("KVM_RUN", true);
  core_->Park();
}

void Vcpu::Unpark(const Args&) { core_->Unpark(); }

// runAsync(spinUs, parked): KVM_RUN on the vCPU thread; the exit reason
// when it came within spinUs, else a Promise of it. `parked`: the run that
// park() held, with any kick that came meanwhile.
Napi::Value Vcpu::RunAsync(const Args& info) {
  Napi::Env env = info.Env();
  bool parked = info[1].ToBoolean();
  if (parked) core_->EndPark();
  try {
    Fd("KVM_RUN", true);
    int64_t spinNs = info[0].IsUndefined() ? 0 : ReadInt(info[0], "spinUs", 0, 1'000'000) * 1000;
    vm_->ValidateSlots(env);
    return core_->StartAsync(env, spinNs);
  } catch (...) {
    if (parked) core_->Unpark();  // no run took the kick state over
    throw;
  }
}

Napi::Value Vcpu::Kick(const Args& info) {
  return Napi::Boolean::New(info.Env(), !core_->closed() && core_->Kick());
}

namespace {
kvm_regs* RegsWords(Napi::Env env, const Napi::Value& v, const char* name) {
  static_assert(sizeof(kvm_regs) == 18 * sizeof(uint64_t), "kvm_regs is 18 u64s");
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
      v.As<Napi::TypedArray>().ElementLength() != 18) {
    throw ArgTypeError(env, name, "a BigUint64Array of 18 elements");
  }
  return reinterpret_cast<kvm_regs*>(v.As<Napi::BigUint64Array>().Data());
}
}  // namespace

// getRegs(into) / setRegs(words): KVM_GET_REGS / KVM_SET_REGS through 18
// words that TypeScript names (cheaper than building objects here).
void Vcpu::GetRegs(const Args& info) {
  kvm_regs* regs = RegsWords(info.Env(), info[0], "into");
  CheckedIoctl(info.Env(), Fd("KVM_GET_REGS"), NODEKVM_IOCTL(KVM_GET_REGS), regs);
}

void Vcpu::SetRegs(const Args& info) {
  kvm_regs regs = *RegsWords(info.Env(), info[0], "words");
  CheckedIoctl(info.Env(), Fd("KVM_SET_REGS"), NODEKVM_IOCTL(KVM_SET_REGS), &regs);
}

// setCpuid(entries): KVM_SET_CPUID2 with objects shaped like
// kvm.getSupportedCpuid()'s.
void Vcpu::SetCpuid(const Args& info) {
  Napi::Env env = info.Env();
  Napi::Array entries = ReadArray(info[0], "entries", 4096);
  int fd = Fd("KVM_SET_CPUID2");
  uint32_t n = entries.Length();
  cpuid_.Reserve(n);
  cpuid_.header()->nent = n;
  for (uint32_t i = 0; i < n; i++) {
    CpuidEntryFromJs(ReadObject(entries.Get(i), "entries[" + std::to_string(i) + "]"), cpuid_.entries()[i], i);
  }
  CheckedIoctl(env, fd, Ioctl{KVM_SET_CPUID2_, "KVM_SET_CPUID2"}, cpuid_.arg());
}

// translate(linearAddress): KVM_TRANSLATE through the guest's page tables.
Napi::Value Vcpu::Translate(const Args& info) {
  Napi::Env env = info.Env();
  kvm_translation t{};
  t.linear_address = ReadU64(info[0], "linearAddress");
  CheckedIoctl(env, Fd("KVM_TRANSLATE"), NODEKVM_IOCTL(KVM_TRANSLATE), &t);
  return TranslationToJs(env, t);
}

// setGuestDebug(control, debugregs[8]): KVM_SET_GUEST_DEBUG.
void Vcpu::SetGuestDebug(const Args& info) {
  Napi::Env env = info.Env();
  kvm_guest_debug dbg{};
  dbg.control = ReadU32(info[0], "control");
  Napi::Array regs = ReadArray(info[1], "debugregs", 8);
  for (uint32_t i = 0; i < regs.Length(); i++) {
    dbg.arch.debugreg[i] = ReadU64(regs.Get(i), "debugregs[" + std::to_string(i) + "]");
  }
  CheckedIoctl(env, Fd("KVM_SET_GUEST_DEBUG"), NODEKVM_IOCTL(KVM_SET_GUEST_DEBUG), &dbg);
}

// getStatsFd(): KVM_GET_STATS_FD on the vCPU. The caller owns the fd.
Napi::Value Vcpu::GetStatsFd(const Args& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_GET_STATS_FD"), NODEKVM_IOCTL(KVM_GET_STATS_FD)));
}

Napi::Value Vcpu::GetRunBuffer(const Args& info) {
  if (core_->closed()) throw ClosedError(info.Env(), "vCPU", "mmap");
  return core_->RunBuffer(info.Env());
}

Napi::Value Vcpu::GetId(const Args& info) { return Napi::Number::New(info.Env(), id_); }

Napi::Value Vcpu::GetFd(const Args& info) { return Napi::Number::New(info.Env(), core_->fd()); }

Napi::Value Vcpu::GetRunning(const Args& info) { return Napi::Boolean::New(info.Env(), core_->busy()); }

Napi::Value Vcpu::GetKickHandle(const Args& info) {
  return Napi::BigInt::New(info.Env(), core_->handle());
}


void Vcpu::Close(const Args&) { core_->Shutdown(); }

// ---- state: the kernel's fixed-size structs as bytes ----

// KVM_CAP_XSAVE2 gives the size of the whole XSAVE area when it outgrows
// struct kvm_xsave (AMX); KVM_GET_XSAVE2 then fills that many bytes.
size_t Vcpu::XsaveSize() {
  int n = IoctlRetry(vm_->fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
  return n > static_cast<int>(sizeof(XsaveArea)) ? static_cast<size_t>(n) : sizeof(XsaveArea);
}

// getState(kind): a copy of the struct KVM_GET_<kind> fills.
Napi::Value Vcpu::GetState(const Args& info) {
  Napi::Env env = info.Env();
  const StateKind& kind = FindStateKind(env, ReadPath(info[0], "kind"));
  int fd = Fd(kind.getName);
  size_t size = std::strcmp(kind.name, "xsave") == 0 ? XsaveSize() : kind.size;
  Ioctl op{kind.get, kind.getName};
  if (size > kind.size) op = Ioctl{KVM_GET_XSAVE2_, "KVM_GET_XSAVE2"};
  // `into`: the caller's bytes, reused (setSregs() reads and writes sregs
  // on every call): no ArrayBuffer per call.
  Napi::Uint8Array out;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    out = ReadBytes(info[1], "into");
    if (out.ByteLength() != size) {
      throw OutOfRangeError(env, "into.byteLength", std::to_string(size) + " (the size of the " + kind.name + " struct)");
    }
  } else {
    out = Napi::Uint8Array::New(env, size);
  }
  CheckedIoctl(env, fd, op, out.Data());
  return out;
}

// setState(kind, bytes, mask?): KVM_SET_<kind> from bytes of exactly its
// size. With a mask (as long), only the bytes where it is set come from
// `bytes`; the rest is the current state, read first with KVM_GET_<kind>:
// what setSregs() of a few fields needs, in one call instead of two.
void Vcpu::SetState(const Args& info) {
  Napi::Env env = info.Env();
  const StateKind& kind = FindStateKind(env, ReadPath(info[0], "kind"));
  Napi::Uint8Array bytes = ReadBytes(info[1], "bytes");
  bool masked = info.Length() > 2 && !info[2].IsUndefined();
  Napi::Uint8Array mask = masked ? ReadBytes(info[2], "mask") : Napi::Uint8Array();
  int fd = Fd(kind.setName);
  size_t size = std::strcmp(kind.name, "xsave") == 0 ? XsaveSize() : kind.size;
  if (bytes.ByteLength() != size) {
    throw OutOfRangeError(env, "bytes.byteLength", std::to_string(size) + " (the size of the " + kind.name + " struct)");
  }
  if (masked && mask.ByteLength() != size) {
    throw OutOfRangeError(env, "mask.byteLength", std::to_string(size) + " (the size of the " + kind.name + " struct)");
  }
  // A copy: the kernel reads the struct while JS could change the view.
  std::vector<uint8_t> copy(size);
  if (masked) {
    Ioctl get{kind.get, kind.getName};
    if (size > kind.size) get = Ioctl{KVM_GET_XSAVE2_, "KVM_GET_XSAVE2"};
    CheckedIoctl(env, fd, get, copy.data());
    const uint8_t* b = bytes.Data();
    const uint8_t* m = mask.Data();
    for (size_t i = 0; i < size; i++) copy[i] = static_cast<uint8_t>((copy[i] & ~m[i]) | (b[i] & m[i]));
  } else {
    std::memcpy(copy.data(), bytes.Data(), size);
  }
  CheckedIoctl(env, fd, Ioctl{kind.set, kind.setName}, copy.data());
}

// getNestedState(): KVM_GET_NESTED_STATE, or null where the KVM has none.
Napi::Value Vcpu::GetNestedState(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_GET_NESTED_STATE");
  int max = IoctlRetry(vm_->fd(), KVM_CHECK_EXTENSION, KVM_CAP_NESTED_STATE);
  if (max <= 0) return env.Null();
  std::vector<uint8_t> buf(static_cast<size_t>(max));
  auto* header = reinterpret_cast<kvm_nested_state*>(buf.data());
  header->size = static_cast<__u32>(max);
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_GET_NESTED_STATE), buf.data());
  size_t used = std::min<size_t>(header->size, buf.size());
  Napi::Uint8Array out = Napi::Uint8Array::New(env, used);
  std::memcpy(out.Data(), buf.data(), used);
  return out;
}

void Vcpu::SetNestedState(const Args& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array bytes = ReadBytes(info[0], "bytes");
  int fd = Fd("KVM_SET_NESTED_STATE");
  if (bytes.ByteLength() < sizeof(kvm_nested_state)) {
    throw OutOfRangeError(env, "bytes.byteLength", ">= " + std::to_string(sizeof(kvm_nested_state)));
  }
  std::vector<uint8_t> copy(bytes.Data(), bytes.Data() + bytes.ByteLength());
  auto* header = reinterpret_cast<kvm_nested_state*>(copy.data());
  if (header->size > copy.size()) {
    throw ArgValueError(env, "bytes", "holds a nested state whose size field is larger than the bytes given");
  }
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_SET_NESTED_STATE), copy.data());
}

// getMsrs(indices): KVM_GET_MSRS; the kernel stops at the first MSR it
// cannot read, so the result may be shorter than the list.
Napi::Value Vcpu::GetMsrs(const Args& info) {
  Napi::Env env = info.Env();
  MsrIndicesFromJs(info[0], msrs_);
  int got = CheckedIoctl(env, Fd("KVM_GET_MSRS"), Ioctl{KVM_GET_MSRS_, "KVM_GET_MSRS"}, msrs_.arg());
  return MsrEntriesToJs(env, msrs_.entries(), static_cast<uint32_t>(got));
}

// setMsrs(entries): KVM_SET_MSRS; returns how many were set (it stops at
// the first the kernel refuses).
Napi::Value Vcpu::SetMsrs(const Args& info) {
  Napi::Env env = info.Env();
  MsrEntriesFromJs(info[0], msrs_);
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_SET_MSRS"), Ioctl{KVM_SET_MSRS_, "KVM_SET_MSRS"}, msrs_.arg()));
}

// getCpuid(): KVM_GET_CPUID2, sized by the kernel's own count.
Napi::Value Vcpu::GetCpuid(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_GET_CPUID2");
  // Newer kernels write the count back on success; 6.1 writes it back
  // never (it fails with E2BIG while nent is smaller than the count). Grow
  // until the call succeeds; if the count did not come back, the smallest
  // nent that succeeds is the count.
  auto fits = [&](uint32_t n) {
    cpuid_.Reserve(n);
    cpuid_.header()->nent = n;
    if (IoctlRetry(fd, KVM_GET_CPUID2_, cpuid_.arg()) == 0) return true;
    if (errno != E2BIG) throw SysError(env, errno, "KVM_GET_CPUID2");
    return false;
  };
  uint32_t hi = 64;
  while (!fits(hi)) {
    if (hi >= 4096) throw SysError(env, E2BIG, "KVM_GET_CPUID2", "more than 4096 entries");
    hi *= 2;
  }
  uint32_t count = cpuid_.header()->nent;
  if (count == hi) {
    uint32_t lo = 0;  // fits(lo) is false or lo == 0
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (fits(mid)) hi = mid;
      else lo = mid + 1;
    }
    count = hi;
    fits(count);  // leave the entries of the last, exact call in the buffer
  }
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, CpuidEntryToJs(env, cpuid_.entries()[i]));
  return out;
}

Napi::Value Vcpu::GetTscKhz(const Args& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_GET_TSC_KHZ"), NODEKVM_IOCTL(KVM_GET_TSC_KHZ)));
}

void Vcpu::SetTscKhz(const Args& info) {
  Napi::Env env = info.Env();
  uint32_t khz = ReadU32(info[0], "khz");
  CheckedIoctl(env, Fd("KVM_SET_TSC_KHZ"), NODEKVM_IOCTL(KVM_SET_TSC_KHZ), khz);
}

// interrupt(irq): KVM_INTERRUPT, for a VM without the in-kernel irqchip.
void Vcpu::Interrupt(const Args& info) {
  Napi::Env env = info.Env();
  kvm_interrupt irq{static_cast<__u32>(ReadInt(info[0], "irq", 0, 255))};
  CheckedIoctl(env, Fd("KVM_INTERRUPT"), NODEKVM_IOCTL(KVM_INTERRUPT), &irq);
}

void Vcpu::Nmi(const Args& info) {
  Napi::Env env = info.Env();
  CheckedIoctl(env, Fd("KVM_NMI"), NODEKVM_IOCTL(KVM_NMI));
}

void Vcpu::Smi(const Args& info) {
  Napi::Env env = info.Env();
  CheckedIoctl(env, Fd("KVM_SMI"), NODEKVM_IOCTL(KVM_SMI));
}

// enableCap(cap, args[]): KVM_ENABLE_CAP on the vCPU.
Napi::Value Vcpu::EnableCap(const Args& info) {
  Napi::Env env = info.Env();
  kvm_enable_cap cap{};
  cap.cap = ReadU32(info[0], "cap");
  Napi::Array args = ReadArray(info[1], "args", 4);
  for (uint32_t i = 0; i < args.Length(); i++) cap.args[i] = ReadU64(args.Get(i), "args[" + std::to_string(i) + "]");
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_ENABLE_CAP"), NODEKVM_IOCTL(KVM_ENABLE_CAP), &cap,
                                             "capability " + std::to_string(cap.cap)));
}

}  // namespace nodekvm

namespace nodekvm {

// completePendingIo(): KVM_RUN with immediate_exit set, which finishes an
// I/O or MMIO access the last exit left pending (SVM and VMX complete it
// only on the next KVM_RUN) and returns at once, so that the registers read
// afterwards are those after the instruction: what a snapshot must save.
void Vcpu::CompletePendingIo(const Args& info) {
  Napi::Env env = info.Env();
  Fd("KVM_RUN", true);
  bool kicked = false;
  if (core_->RunOnce(&kicked, true) < 0 && errno != EINTR) throw SysError(env, errno, "KVM_RUN", "completing pending I/O");
}

// ---- sync_regs: registers exchanged through kvm_run, without ioctls ----

// setSyncRegs(mask): which of KVM_SYNC_X86_REGS (1), _SREGS (2), _EVENTS
// (4) KVM writes into kvm_run at every exit.
void Vcpu::SetSyncRegs(const Args& info) {
  Fd("KVM_RUN");
  core_->run()->kvm_valid_regs = static_cast<__u64>(ReadInt(info[0], "mask", 0, KVM_SYNC_X86_VALID_FIELDS));
}

}  // namespace nodekvm
