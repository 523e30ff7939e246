#include "vm.h"

#include <linux/kvm.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "base/addon.h"
#include "base/args.h"
#include "base/errors.h"
#include "base/flex.h"
#include "base/ioctl.h"
#include "memory.h"
#include "vcpu.h"

namespace nodekvm {

namespace {
struct PendingVm {
  UniqueFd fd;
  size_t vcpuMmapSize;
};

// KVM writes a whole number of 64-bit words per slot.
size_t BitmapBytes(uint64_t npages) { return ((npages + 63) / 64) * 8; }
}  // namespace

// The binding's vm functions, each taking the VM's slot first.
Napi::Object Vm::DefineFunctions(Napi::Env env) {
  Table<Vm>* table = Data(env).vmTable.get();
  Napi::Object o = Napi::Object::New(env);
  auto add = [&](const char* name, napi_callback cb) { AddSlotFunction(env, o, name, cb, table); };
  add("release", &ReleaseBySlot<Vm>);
  add("checkExtension", &CallBySlot<Vm, Napi::Value, &Vm::CheckExtension>);
  add("setTssAddr", &CallBySlot<Vm, void, &Vm::SetTssAddr>);
  add("setIdentityMapAddr", &CallBySlot<Vm, void, &Vm::SetIdentityMapAddr>);
  add("setUserMemoryRegion", &CallBySlot<Vm, Napi::Value, &Vm::SetUserMemoryRegion>);
  add("createVcpu", &CallBySlot<Vm, Napi::Value, &Vm::CreateVcpu>);
  add("slots", &CallBySlot<Vm, Napi::Value, &Vm::Slots>);
  add("getDirtyLog", &CallBySlot<Vm, void, &Vm::GetDirtyLog>);
  add("clearDirtyLog", &CallBySlot<Vm, void, &Vm::ClearDirtyLog>);
  add("enableCap", &CallBySlot<Vm, Napi::Value, &Vm::EnableCap>);
  add("getStatsFd", &CallBySlot<Vm, Napi::Value, &Vm::GetStatsFd>);
  add("close", &CallBySlot<Vm, void, &Vm::Close>);
  add("fd", &CallBySlot<Vm, Napi::Value, &Vm::GetFd>);
  add("slotGeneration", &CallBySlot<Vm, Napi::Value, &Vm::GetSlotGeneration>);
  add("ioeventfd", &CallBySlot<Vm, void, &Vm::IoEventFd>);
  add("irqfd", &CallBySlot<Vm, void, &Vm::IrqFd>);
  add("coalescedZone", &CallBySlot<Vm, void, &Vm::CoalescedZone>);
  add("enableDirtyRing", &CallBySlot<Vm, void, &Vm::EnableDirtyRing>);
  add("resetDirtyRings", &CallBySlot<Vm, Napi::Value, &Vm::ResetDirtyRings>);
  add("dirtyRingBytes", &CallBySlot<Vm, Napi::Value, &Vm::GetDirtyRingBytes>);
  add("createIrqchip", &CallBySlot<Vm, void, &Vm::CreateIrqchip>);
  add("getIrqchip", &CallBySlot<Vm, Napi::Value, &Vm::GetIrqchip>);
  add("setIrqchip", &CallBySlot<Vm, void, &Vm::SetIrqchip>);
  add("irqLine", &CallBySlot<Vm, Napi::Value, &Vm::IrqLine>);
  add("setGsiRouting", &CallBySlot<Vm, void, &Vm::SetGsiRouting>);
  add("createPit2", &CallBySlot<Vm, void, &Vm::CreatePit2>);
  add("getPit2", &CallBySlot<Vm, Napi::Value, &Vm::GetPit2>);
  add("setPit2", &CallBySlot<Vm, void, &Vm::SetPit2>);
  add("getClock", &CallBySlot<Vm, Napi::Value, &Vm::GetClock>);
  add("setClock", &CallBySlot<Vm, void, &Vm::SetClock>);
  add("setMsrFilter", &CallBySlot<Vm, void, &Vm::SetMsrFilter>);
  add("createGuestMemfd", &CallBySlot<Vm, Napi::Value, &Vm::CreateGuestMemfd>);
  return o;
}

Vm::Vm(Napi::Env env, UniqueFd fd, size_t vcpuMmapSize)
    : fd_(std::move(fd)), vcpuMmapSize_(vcpuMmapSize), env_(env), runTable_(Data(env).runTable) {}

// Released (garbage-collected) or torn down: no one holds a vCPU of it
// either (lib's vCPU holds its VM), so a runAsync() in flight ends quietly.
Vm::~Vm() {
  for (auto& core : vcpus_) core->MarkCollected();
  CloseAll();
  for (uint32_t slot : vcpuSlots_) {
    if (Vcpu* v = runTable_->Find(slot)) v->ForgetVm(this);
  }
}

int Vm::Fd(const char* syscall) {
  if (!fd_.valid()) throw ClosedError(Env(), "VM", syscall);
  return fd_.get();
}

Napi::Value Vm::CheckExtension(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_CHECK_EXTENSION");
  return Napi::Number::New(env, CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_CHECK_EXTENSION), ReadU32(info[0], "cap")));
}

void Vm::SetTssAddr(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_SET_TSS_ADDR");
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_SET_TSS_ADDR), ReadU64(info[0], "address", UINT32_MAX));
}

void Vm::SetIdentityMapAddr(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_SET_IDENTITY_MAP_ADDR");
  uint64_t addr = ReadU64(info[0], "address", UINT32_MAX);
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_SET_IDENTITY_MAP_ADDR), &addr);
}

int Vm::DeleteSlot(uint32_t id) {
  auto it = slots_.find(id);
  kvm_userspace_memory_region region{};
  region.slot = id;
  region.guest_phys_addr = it == slots_.end() ? 0 : it->second.gpa;
  int r = IoctlRetry(fd_.get(), KVM_SET_USER_MEMORY_REGION, reinterpret_cast<unsigned long>(&region));
  if (r == 0 && it != slots_.end()) {
    if (it->second.borrowed) SetBorrowedSlots(borrowedSlots_ - 1);
    Memory::Unpin(it->second.pins, it->second.mapping);
    slots_.erase(it);
    ++slotGeneration_;
  }
  return r;
}

// setUserMemoryRegion(slot, flags, gpa, size, memory?, offset, owner,
// guestMemfd?, guestMemfdOffset?): size 0 deletes the slot. `owner` (lib's
// GuestMemory around `memory`) is what the slot holds and slots() gives. Returns the userspace_addr KVM was given (undefined for
// a delete); lib/ counts the slot generation along.
Napi::Value Vm::SetUserMemoryRegion(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_SET_USER_MEMORY_REGION");
  uint32_t id = ReadU32(info[0], "slot");
  uint32_t flags = ReadU32(info[1], "flags");
  uint64_t gpa = ReadU64(info[2], "guestPhysAddr");
  uint64_t size = ReadU64(info[3], "size");

  if (size == 0) {
    if (DeleteSlot(id) < 0) {
      throw SysError(env, errno, "KVM_SET_USER_MEMORY_REGION", "delete slot " + std::to_string(id));
    }
    return env.Undefined();
  }

  Memory* memory = Memory::FromSlot(info[4], "memory");
  uint64_t offset = ReadU64(info[5], "offset");
  Napi::Object owner = ReadObject(info[6], "owner");
  if (!memory->StillValid(env)) {
    throw SysError(env, EFAULT, "KVM_SET_USER_MEMORY_REGION", "the memory is closed or its buffer was detached");
  }
  if (offset > memory->size() || size > memory->size() - offset) {
    throw SysError(env, EFAULT, "KVM_SET_USER_MEMORY_REGION",
                   "offset " + std::to_string(offset) + " + size " + std::to_string(size) +
                       " is beyond the memory's " + std::to_string(memory->size()) + " bytes");
  }
  kvm_userspace_memory_region region{};
  region.slot = id;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uintptr_t>(memory->data()) + offset;
  if (info.Length() > 7 && !info[7].IsUndefined()) {
    // A guest_memfd binding: KVM_SET_USER_MEMORY_REGION2 with KVM_MEM_GUEST_MEMFD.
    MemoryRegion2 r2{};
    r2.slot = id;
    r2.flags = flags | KVM_MEM_GUEST_MEMFD_;
    r2.guest_phys_addr = gpa;
    r2.memory_size = size;
    r2.userspace_addr = region.userspace_addr;
    r2.guest_memfd = static_cast<__u32>(ReadInt(info[7], "guestMemfd", 0, INT32_MAX));
    r2.guest_memfd_offset = ReadU64(info[8], "guestMemfdOffset");
    CheckedIoctl(env, fd, Ioctl{KVM_SET_USER_MEMORY_REGION2_, "KVM_SET_USER_MEMORY_REGION2"}, &r2, "slot " + std::to_string(id));
    flags = r2.flags;
  } else {
    CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_SET_USER_MEMORY_REGION), &region, "slot " + std::to_string(id));
  }
  // A move or flag change of an existing slot keeps its memory (KVM refuses
  // to change the memory itself), so only a new slot pins.
  auto it = slots_.find(id);
  if (it == slots_.end()) {
    bool borrowed = memory->NeedsValidation();
    if (borrowed) SetBorrowedSlots(borrowedSlots_ + 1);
    auto pins = memory->Pin();
    slots_.emplace(id, Slot{flags, gpa, size, region.userspace_addr, offset, borrowed, memory,
                            Napi::Persistent(owner), std::move(pins), memory->mapping()});
  } else {
    it->second.flags = flags;
    it->second.gpa = gpa;
  }
  ++slotGeneration_;
  // The address only: an array of two cost a third of this call (napi_set_element).
  return Napi::BigInt::New(env, static_cast<uint64_t>(region.userspace_addr));
}

// Each vCPU keeps whether there are any, so that a run need not read the VM.
void Vm::SetBorrowedSlots(size_t n) {
  borrowedSlots_ = n;
  for (auto& core : vcpus_) core->setCheckSlots(n > 0);
}

void Vm::ValidateSlots(Napi::Env env) {
  if (borrowedSlots_ == 0) return;
  for (auto it = slots_.begin(); it != slots_.end(); ++it) {
    if (!it->second.borrowed || it->second.memory->StillValid(env)) continue;
    uint32_t id = it->first;
    DeleteSlot(id);
    throw SysError(env, EFAULT, "KVM_RUN",
                   "the buffer behind slot " + std::to_string(id) +
                       " was detached or moved; the slot was deleted so KVM cannot reach freed memory");
  }
}

Napi::Value Vm::CreateVcpu(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_CREATE_VCPU");
  uint32_t id = ReadU32(info[0], "id");
  UniqueFd owned(CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_CREATE_VCPU), id, "vCPU id " + std::to_string(id)));
  void* run = ::mmap(nullptr, vcpuMmapSize_, PROT_READ | PROT_WRITE, MAP_SHARED, owned.get(), 0);
  if (run == MAP_FAILED) throw SysError(env, errno, "mmap", "kvm_run of vCPU " + std::to_string(id));
  auto core = std::make_shared<VcpuCore>(std::move(owned), run, vcpuMmapSize_);
  // Closed vCPUs need not wait for the VM to close.
  vcpus_.erase(std::remove_if(vcpus_.begin(), vcpus_.end(), [](const auto& c) { return c->closed(); }),
               vcpus_.end());
  core->setCheckSlots(borrowedSlots_ > 0);
  vcpus_.push_back(core);
  // Collected vCPUs' slots go too (a reused slot number is harmless: ForgetVm checks the VM).
  vcpuSlots_.erase(std::remove_if(vcpuSlots_.begin(), vcpuSlots_.end(),
                                  [this](uint32_t s) { return runTable_->Find(s) == nullptr; }),
                   vcpuSlots_.end());
  uint32_t slot = runTable_->Add(std::make_unique<Vcpu>(env, std::move(core), id, this));
  vcpuSlots_.push_back(slot);
  return Napi::Number::New(env, slot);
}

// slots(): the registered slots as the kernel has them, by id.
Napi::Value Vm::Slots(const Args& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, slots_.size());
  uint32_t i = 0;
  for (const auto& [id, slot] : slots_) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, id));
    o.Set("flags", Napi::Number::New(env, slot.flags));
    o.Set("guestPhysAddr", Napi::BigInt::New(env, slot.gpa));
    o.Set("size", Napi::Number::New(env, static_cast<double>(slot.size)));
    o.Set("userspaceAddr", Napi::BigInt::New(env, slot.hva));
    o.Set("offset", Napi::Number::New(env, static_cast<double>(slot.offset)));
    o.Set("memory", slot.memoryRef.Value());
    out.Set(i++, o);
  }
  return out;
}

Napi::Value Vm::GetSlotGeneration(const Args& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(slotGeneration_));
}

// getDirtyLog(slot, bitmap): KVM_GET_DIRTY_LOG into a caller's buffer.
void Vm::GetDirtyLog(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_GET_DIRTY_LOG");
  uint32_t id = ReadU32(info[0], "slot");
  Napi::Uint8Array bitmap = ReadBytes(info[1], "bitmap");
  auto it = slots_.find(id);
  if (it == slots_.end()) throw SysError(env, ENOENT, "KVM_GET_DIRTY_LOG", "no slot " + std::to_string(id));
  if (bitmap.ByteLength() < BitmapBytes(it->second.size / PageSize())) {
    throw OutOfRangeError(env, "bitmap.byteLength", ">= " + std::to_string(BitmapBytes(it->second.size / PageSize())));
  }
  kvm_dirty_log log{};
  log.slot = id;
  log.dirty_bitmap = bitmap.Data();
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_GET_DIRTY_LOG), &log, "slot " + std::to_string(id));
}

// clearDirtyLog(slot, firstPage, numPages, bitmap): KVM_CLEAR_DIRTY_LOG,
// where bit i of bitmap clears page firstPage + i.
void Vm::ClearDirtyLog(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_CLEAR_DIRTY_LOG");
  kvm_clear_dirty_log c{};
  c.slot = ReadU32(info[0], "slot");
  c.first_page = ReadU64(info[1], "firstPage");
  c.num_pages = ReadU32(info[2], "numPages");
  Napi::Uint8Array bitmap = ReadBytes(info[3], "bitmap");
  if (bitmap.ByteLength() < BitmapBytes(c.num_pages)) {
    throw OutOfRangeError(env, "bitmap.byteLength", ">= " + std::to_string(BitmapBytes(c.num_pages)));
  }
  c.dirty_bitmap = bitmap.Data();
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_CLEAR_DIRTY_LOG), &c, "slot " + std::to_string(c.slot));
}

// enableCap(cap, args[]): KVM_ENABLE_CAP on the VM.
Napi::Value Vm::EnableCap(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_ENABLE_CAP");
  kvm_enable_cap cap{};
  cap.cap = ReadU32(info[0], "cap");
  Napi::Array args = ReadArray(info[1], "args", 4);
  for (uint32_t i = 0; i < args.Length(); i++) cap.args[i] = ReadU64(args.Get(i), "args[" + std::to_string(i) + "]");
  return Napi::Number::New(env, CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_ENABLE_CAP), &cap,
                                             "capability " + std::to_string(cap.cap)));
}

// getStatsFd(): KVM_GET_STATS_FD. The caller owns (and closes) the fd.
Napi::Value Vm::GetStatsFd(const Args& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_GET_STATS_FD"), NODEKVM_IOCTL(KVM_GET_STATS_FD)));
}

Napi::Value Vm::GetFd(const Args& info) { return Napi::Number::New(info.Env(), fd_.get()); }

void Vm::Close(const Args&) { CloseAll(); }

// createGuestMemfd(size, flags): KVM_CREATE_GUEST_MEMFD. The caller owns
// (and closes) the fd.
Napi::Value Vm::CreateGuestMemfd(const Args& info) {
  Napi::Env env = info.Env();
  GuestMemfdRequest req{};
  req.size = ReadU64(info[0], "size");
  req.flags = ReadU64(info[1], "flags");
  int fd = Fd("KVM_CREATE_GUEST_MEMFD");
  return Napi::Number::New(env, CheckedIoctl(env, fd, Ioctl{KVM_CREATE_GUEST_MEMFD_, "KVM_CREATE_GUEST_MEMFD"}, &req));
}

// ---- the in-kernel interrupt controllers, PIT and clock ----

namespace {
// Copies `bytes` (exactly `size` of them) into a struct the kernel reads.
template <class T>
void BytesInto(Napi::Env env, const Napi::Value& v, T& out, size_t offset, size_t size) {
  Napi::Uint8Array bytes = ReadBytes(v, "bytes");
  if (bytes.ByteLength() != size) throw OutOfRangeError(env, "bytes.byteLength", std::to_string(size));
  std::memcpy(reinterpret_cast<uint8_t*>(&out) + offset, bytes.Data(), size);
}

template <class T>
Napi::Uint8Array BytesOf(Napi::Env env, const T& in, size_t offset, size_t size) {
  Napi::Uint8Array out = Napi::Uint8Array::New(env, size);
  std::memcpy(out.Data(), reinterpret_cast<const uint8_t*>(&in) + offset, size);
  return out;
}

constexpr size_t kChipOffset = offsetof(kvm_irqchip, chip);
constexpr size_t kChipSize = sizeof(kvm_irqchip) - offsetof(kvm_irqchip, chip);
}  // namespace

// createIrqchip(): KVM_CREATE_IRQCHIP (PIC master and slave, IOAPIC, and a
// local APIC per vCPU created afterwards).
void Vm::CreateIrqchip(const Args& info) {
  int fd = Fd("KVM_CREATE_IRQCHIP");
  // KVM refuses it (EINVAL) once any vCPU exists: say so.
  CheckedIoctl(info.Env(), fd, NODEKVM_IOCTL(KVM_CREATE_IRQCHIP), 0,
               vcpus_.empty() ? "" : "create it before the first vCPU; KVM refuses it once a vCPU exists");
}

// getIrqchip(chipId): the chip's state (kvm_pic_state or
// kvm_ioapic_state, in the 512 bytes of kvm_irqchip's union).
Napi::Value Vm::GetIrqchip(const Args& info) {
  Napi::Env env = info.Env();
  kvm_irqchip chip{};
  chip.chip_id = static_cast<__u32>(ReadInt(info[0], "chipId", 0, KVM_NR_IRQCHIPS - 1));
  CheckedIoctl(env, Fd("KVM_GET_IRQCHIP"), NODEKVM_IOCTL(KVM_GET_IRQCHIP), &chip);
  return BytesOf(env, chip, kChipOffset, kChipSize);
}

void Vm::SetIrqchip(const Args& info) {
  Napi::Env env = info.Env();
  kvm_irqchip chip{};
  chip.chip_id = static_cast<__u32>(ReadInt(info[0], "chipId", 0, KVM_NR_IRQCHIPS - 1));
  BytesInto(env, info[1], chip, kChipOffset, kChipSize);
  CheckedIoctl(env, Fd("KVM_SET_IRQCHIP"), NODEKVM_IOCTL(KVM_SET_IRQCHIP), &chip);
}

// irqLine(irq, level): KVM_IRQ_LINE_STATUS; returns the delivery status
// (> 0 delivered, 0 masked or coalesced, < 0 ignored).
Napi::Value Vm::IrqLine(const Args& info) {
  Napi::Env env = info.Env();
  kvm_irq_level level{};
  level.irq = ReadU32(info[0], "irq");
  level.level = ReadU32(info[1], "level");
  CheckedIoctl(env, Fd("KVM_IRQ_LINE_STATUS"), NODEKVM_IOCTL(KVM_IRQ_LINE_STATUS), &level);
  return Napi::Number::New(env, level.status);
}

// setGsiRouting(entries): KVM_SET_GSI_ROUTING, every GSI's route at once.
// An entry is { gsi, type: 1 (irqchip) | 2 (msi), irqchip, pin } or
// { gsi, type: 2, addressLo, addressHi, data }.
void Vm::SetGsiRouting(const Args& info) {
  Napi::Env env = info.Env();
  Napi::Array entries = ReadArray(info[0], "entries", 4096);
  int fd = Fd("KVM_SET_GSI_ROUTING");
  IrqRoutingBuffer routing;
  uint32_t n = entries.Length();
  routing.Reserve(n);
  *routing.header() = IrqRoutingHeader{n, 0};
  for (uint32_t i = 0; i < n; i++) {
    std::string name = "entries[" + std::to_string(i) + "]";
    Napi::Object o = ReadObject(entries.Get(i), name);
    kvm_irq_routing_entry& e = routing.entries()[i];
    std::memset(&e, 0, sizeof e);
    e.gsi = ReadU32(o.Get("gsi"), name + ".gsi");
    e.type = static_cast<__u32>(ReadInt(o.Get("type"), name + ".type", KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI));
    if (e.type == KVM_IRQ_ROUTING_IRQCHIP) {
      e.u.irqchip.irqchip = static_cast<__u32>(ReadInt(o.Get("irqchip"), name + ".irqchip", 0, KVM_NR_IRQCHIPS - 1));
      e.u.irqchip.pin = ReadU32(o.Get("pin"), name + ".pin");
    } else {
      e.u.msi.address_lo = ReadU32(o.Get("addressLo"), name + ".addressLo");
      e.u.msi.address_hi = ReadU32(o.Get("addressHi"), name + ".addressHi");
      e.u.msi.data = ReadU32(o.Get("data"), name + ".data");
    }
  }
  CheckedIoctl(env, fd, Ioctl{KVM_SET_GSI_ROUTING_, "KVM_SET_GSI_ROUTING"}, routing.arg());
}

// createPit2(flags): KVM_CREATE_PIT2 (flags: KVM_PIT_SPEAKER_DUMMY = 1).
void Vm::CreatePit2(const Args& info) {
  Napi::Env env = info.Env();
  kvm_pit_config config{};
  config.flags = ReadU32(info[0], "flags");
  CheckedIoctl(env, Fd("KVM_CREATE_PIT2"), NODEKVM_IOCTL(KVM_CREATE_PIT2), &config);
}

Napi::Value Vm::GetPit2(const Args& info) {
  Napi::Env env = info.Env();
  kvm_pit_state2 pit{};
  CheckedIoctl(env, Fd("KVM_GET_PIT2"), NODEKVM_IOCTL(KVM_GET_PIT2), &pit);
  return BytesOf(env, pit, 0, sizeof pit);
}

void Vm::SetPit2(const Args& info) {
  Napi::Env env = info.Env();
  kvm_pit_state2 pit{};
  BytesInto(env, info[0], pit, 0, sizeof pit);
  CheckedIoctl(env, Fd("KVM_SET_PIT2"), NODEKVM_IOCTL(KVM_SET_PIT2), &pit);
}

// getClock(): KVM_GET_CLOCK, the kvmclock the guest sees (struct kvm_clock_data).
Napi::Value Vm::GetClock(const Args& info) {
  Napi::Env env = info.Env();
  kvm_clock_data clock{};
  CheckedIoctl(env, Fd("KVM_GET_CLOCK"), NODEKVM_IOCTL(KVM_GET_CLOCK), &clock);
  return BytesOf(env, clock, 0, sizeof clock);
}

void Vm::SetClock(const Args& info) {
  Napi::Env env = info.Env();
  kvm_clock_data clock{};
  BytesInto(env, info[0], clock, 0, sizeof clock);
  CheckedIoctl(env, Fd("KVM_SET_CLOCK"), NODEKVM_IOCTL(KVM_SET_CLOCK), &clock);
}

// setMsrFilter(flags, ranges): KVM_X86_SET_MSR_FILTER. Each range is
// { flags, base, nmsrs, bitmap } with a bit per MSR (1: allowed); the
// kernel copies the bitmaps during the call.
void Vm::SetMsrFilter(const Args& info) {
  Napi::Env env = info.Env();
  kvm_msr_filter filter{};
  filter.flags = ReadU32(info[0], "flags");
  Napi::Array ranges = ReadArray(info[1], "ranges", KVM_MSR_FILTER_MAX_RANGES);
  std::vector<std::vector<uint8_t>> bitmaps(ranges.Length());
  for (uint32_t i = 0; i < ranges.Length(); i++) {
    std::string name = "ranges[" + std::to_string(i) + "]";
    Napi::Object o = ReadObject(ranges.Get(i), name);
    kvm_msr_filter_range& r = filter.ranges[i];
    r.flags = ReadU32(o.Get("flags"), name + ".flags");
    r.base = ReadU32(o.Get("base"), name + ".base");
    r.nmsrs = ReadU32(o.Get("nmsrs"), name + ".nmsrs");
    Napi::Uint8Array bitmap = ReadBytes(o.Get("bitmap"), name + ".bitmap");
    if (bitmap.ByteLength() * 8 < r.nmsrs || bitmap.ByteLength() > KVM_MSR_FILTER_MAX_BITMAP_SIZE) {
      throw OutOfRangeError(env, name + ".bitmap.byteLength", "enough bits for nmsrs and <= " + std::to_string(KVM_MSR_FILTER_MAX_BITMAP_SIZE));
    }
    bitmaps[i].assign(bitmap.Data(), bitmap.Data() + bitmap.ByteLength());
    r.bitmap = bitmaps[i].data();
  }
  CheckedIoctl(env, Fd("KVM_X86_SET_MSR_FILTER"), NODEKVM_IOCTL(KVM_X86_SET_MSR_FILTER), &filter);
}

// vCPUs first (they hold the VM in the kernel), then the VM fd, and only
// then the memory: KVM never sees a slot whose pages are gone.
void Vm::CloseAll() {
  for (auto& core : vcpus_) core->Shutdown();
  vcpus_.clear();
  fd_.Reset();
  for (auto& [id, slot] : slots_) Memory::Unpin(slot.pins, slot.mapping);
  if (!slots_.empty()) ++slotGeneration_;
  slots_.clear();
  SetBorrowedSlots(0);
}

}  // namespace nodekvm
