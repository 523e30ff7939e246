// The rings KVM shares with userspace: coalesced MMIO/PIO zones (whose ring
// is the kvm_run mapping's page KVM_COALESCED_MMIO_PAGE_OFFSET, read by
// lib/core/rings.ts through runBuffer) and the per-vCPU dirty ring (mapped
// here at KVM_DIRTY_LOG_PAGE_OFFSET and harvested in bulk).
#include <linux/kvm.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <memory>
#include <string>

#include "base/addon.h"
#include "base/args.h"
#include "base/errors.h"
#include "base/ioctl.h"
#include "rings.h"
#include "vcpu.h"
#include "vm.h"

namespace nodekvm {

namespace {
// struct kvm_coalesced_mmio_ring declares its entries as a flexible array,
// whose C++ padding we do not trust: the layout is spelled out and checked.
constexpr size_t kRingEntries = 8;  // offsetof(kvm_coalesced_mmio_ring, coalesced_mmio) in C
static_assert(sizeof(kvm_coalesced_mmio) == 24, "struct kvm_coalesced_mmio is 24 bytes");
static_assert(offsetof(kvm_coalesced_mmio, data) == 16, "kvm_coalesced_mmio.data at 16");
static_assert(sizeof(kvm_dirty_gfn) == 16, "struct kvm_dirty_gfn is 16 bytes");
static_assert(sizeof(kvm_coalesced_mmio_zone) == 16, "struct kvm_coalesced_mmio_zone is 16 bytes");

template <class T>
T ReadTypedArray(const Napi::Value& v, const std::string& name, napi_typedarray_type type, const char* expected) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) throw ArgTypeError(v.Env(), name, expected);
  return v.As<T>();
}
}  // namespace

Napi::Object RingLayouts(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* name, double v) { o.Set(name, Napi::Number::New(env, v)); };
  set("coalescedPageOffset", KVM_COALESCED_MMIO_PAGE_OFFSET);
  set("coalescedFirst", offsetof(kvm_coalesced_mmio_ring, first));
  set("coalescedLast", offsetof(kvm_coalesced_mmio_ring, last));
  set("coalescedEntries", kRingEntries);
  set("coalescedEntrySize", sizeof(kvm_coalesced_mmio));
  set("coalescedPhysAddr", offsetof(kvm_coalesced_mmio, phys_addr));
  set("coalescedLen", offsetof(kvm_coalesced_mmio, len));
  set("coalescedPio", offsetof(kvm_coalesced_mmio, pio));
  set("coalescedData", offsetof(kvm_coalesced_mmio, data));
  set("coalescedMax", static_cast<double>((PageSize() - kRingEntries) / sizeof(kvm_coalesced_mmio)));
  set("dirtyPageOffset", KVM_DIRTY_LOG_PAGE_OFFSET);
  set("dirtyGfnSize", sizeof(kvm_dirty_gfn));
  set("dirtyMaxEntries", 65536);  // KVM_DIRTY_RING_MAX_ENTRIES
  set("capDirtyLogRingAcqRel", KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
  set("capIrqfdResample", KVM_CAP_IRQFD_RESAMPLE);
  set("ioeventfdDatamatch", KVM_IOEVENTFD_FLAG_DATAMATCH);
  set("ioeventfdPio", KVM_IOEVENTFD_FLAG_PIO);
  set("ioeventfdDeassign", KVM_IOEVENTFD_FLAG_DEASSIGN);
  set("irqfdDeassign", KVM_IRQFD_FLAG_DEASSIGN);
  set("irqfdResample", KVM_IRQFD_FLAG_RESAMPLE);
  return o;
}

// coalescedZone(register, address, size, pio):
// KVM_REGISTER_COALESCED_MMIO or KVM_UNREGISTER_COALESCED_MMIO.
void Vm::CoalescedZone(const Args& info) {
  Napi::Env env = info.Env();
  bool add = ReadBool(info[0], "register");
  kvm_coalesced_mmio_zone zone{};
  zone.addr = ReadU64(info[1], "address");
  zone.size = ReadU32(info[2], "size");
  zone.pio = ReadBool(info[3], "pio") ? 1 : 0;
  std::string detail = std::string(zone.pio ? "ports " : "address ") + std::to_string(zone.addr) + "+" + std::to_string(zone.size);
  if (add) {
    CheckedIoctl(env, Fd("KVM_REGISTER_COALESCED_MMIO"), NODEKVM_IOCTL(KVM_REGISTER_COALESCED_MMIO), &zone, detail);
  } else {
    CheckedIoctl(env, Fd("KVM_UNREGISTER_COALESCED_MMIO"), NODEKVM_IOCTL(KVM_UNREGISTER_COALESCED_MMIO), &zone, detail);
  }
}

// enableDirtyRing(bytes, acqRel): KVM_ENABLE_CAP KVM_CAP_DIRTY_LOG_RING(_ACQ_REL)
// with the ring size per vCPU; only before the first vCPU.
void Vm::EnableDirtyRing(const Args& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_ENABLE_CAP");
  uint32_t bytes = ReadU32(info[0], "bytes");
  bool acqRel = ReadBool(info[1], "acqRel");
  if (!vcpus_.empty()) {
    throw SysError(env, EINVAL, "KVM_ENABLE_CAP", "the dirty ring must be enabled before the VM's first vCPU is created");
  }
  kvm_enable_cap cap{};
  cap.cap = acqRel ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL : KVM_CAP_DIRTY_LOG_RING;
  cap.args[0] = bytes;
  CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_ENABLE_CAP), &cap, "dirty ring of " + std::to_string(bytes) + " bytes");
  dirtyRingBytes_ = bytes;
}

// resetDirtyRings(): KVM_RESET_DIRTY_RINGS; the number of entries reset.
Napi::Value Vm::ResetDirtyRings(const Args& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_RESET_DIRTY_RINGS"), NODEKVM_IOCTL(KVM_RESET_DIRTY_RINGS)));
}

Napi::Value Vm::GetDirtyRingBytes(const Args& info) {
  return Napi::Number::New(info.Env(), dirtyRingBytes_);
}

// harvestDirtyRing(slots: Uint32Array, offsets: BigUint64Array): copies the
// dirty entries from the vCPU's ring position on (at most the arrays'
// length), marks each harvested (KVM_DIRTY_GFN_F_RESET) and returns how
// many. KVM_RESET_DIRTY_RINGS then re-protects them. Safe while the vCPU
// runs: the flags are read with acquire and written with release order.
Napi::Value Vcpu::HarvestDirtyRing(const Args& info) {
  Napi::Env env = info.Env();
  if (core_->closed()) throw ClosedError(env, "vCPU", "harvestDirtyRing");
  auto slots = ReadTypedArray<Napi::Uint32Array>(info[0], "slots", napi_uint32_array, "an instance of Uint32Array");
  auto offsets = ReadTypedArray<Napi::BigUint64Array>(info[1], "offsets", napi_biguint64_array, "an instance of BigUint64Array");
  uint32_t bytes = vm_->dirtyRingBytes();
  if (bytes == 0) throw SysError(env, ENXIO, "harvestDirtyRing", "the VM has no dirty ring (enable it before creating vCPUs)");
  VcpuCore::DirtyRing& ring = core_->dirtyRing();
  if (!ring.map) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, core_->fd(),
                     static_cast<off_t>(KVM_DIRTY_LOG_PAGE_OFFSET) * static_cast<off_t>(PageSize()));
    if (p == MAP_FAILED) throw SysError(env, errno, "mmap", "the dirty ring of vCPU " + std::to_string(id_));
    ring.map = std::make_unique<Mapping>(p, bytes);
    ring.entries = bytes / sizeof(kvm_dirty_gfn);
  }
  auto* gfns = reinterpret_cast<kvm_dirty_gfn*>(ring.map->data());
  size_t max = std::min(slots.ElementLength(), offsets.ElementLength());
  uint32_t* outSlots = slots.Data();
  uint64_t* outOffsets = offsets.Data();
  size_t n = 0;
  while (n < max) {
    kvm_dirty_gfn* e = &gfns[ring.fetch & (ring.entries - 1)];  // entries: a power of two
    uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
    if (!(flags & KVM_DIRTY_GFN_F_DIRTY)) break;
    outSlots[n] = e->slot;
    outOffsets[n] = e->offset;
    __atomic_store_n(&e->flags, static_cast<__u32>(KVM_DIRTY_GFN_F_RESET), __ATOMIC_RELEASE);
    ring.fetch++;
    n++;
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace nodekvm
