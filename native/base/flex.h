// The kernel's variable-length structs (a header, then n entries:
// kvm_cpuid2, kvm_msrs, kvm_irq_routing...) as one reusable buffer.
//
// In C++ the uapi headers' flexible arrays (__DECLARE_FLEX_ARRAY) add
// padding, which changes both the entries' offset and the size encoded in
// the ioctl numbers, so the kernel would reject the ioctls with EINVAL. Each
// struct's header is therefore declared here on its own, and the ioctl
// numbers are built from it.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <vector>

namespace nodekvm {

template <class Header, class Entry>
class FlexBuffer {
 public:
  // Room for n entries (grows, never shrinks: reuse it across calls).
  void Reserve(uint32_t n) {
    size_t need = sizeof(Header) + static_cast<size_t>(n) * sizeof(Entry);
    if (bytes_.size() < need) bytes_.resize(need);
    capacity_ = n;
  }
  uint32_t capacity() const { return capacity_; }
  Header* header() { return reinterpret_cast<Header*>(bytes_.data()); }
  Entry* entries() { return reinterpret_cast<Entry*>(bytes_.data() + sizeof(Header)); }
  unsigned long arg() { return reinterpret_cast<unsigned long>(bytes_.data()); }

 private:
  std::vector<uint8_t> bytes_ = std::vector<uint8_t>(sizeof(Header));
  uint32_t capacity_ = 0;
};

struct CpuidHeader {
  __u32 nent;
  __u32 padding;
};
static_assert(sizeof(CpuidHeader) == 8, "struct kvm_cpuid2 header is 8 bytes");
using CpuidBuffer = FlexBuffer<CpuidHeader, kvm_cpuid_entry2>;

constexpr unsigned long KVM_GET_SUPPORTED_CPUID_ = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long KVM_SET_CPUID2_ = _IOW(KVMIO, 0x90, CpuidHeader);

struct MsrsHeader {
  __u32 nmsrs;
  __u32 pad;
};
static_assert(sizeof(MsrsHeader) == 8, "struct kvm_msrs header is 8 bytes");
using MsrsBuffer = FlexBuffer<MsrsHeader, kvm_msr_entry>;
constexpr unsigned long KVM_GET_MSRS_ = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long KVM_SET_MSRS_ = _IOW(KVMIO, 0x89, MsrsHeader);

struct MsrListHeader {
  __u32 nmsrs;
};
using MsrListBuffer = FlexBuffer<MsrListHeader, __u32>;
constexpr unsigned long KVM_GET_MSR_INDEX_LIST_ = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long KVM_GET_MSR_FEATURE_INDEX_LIST_ = _IOWR(KVMIO, 0x0a, MsrListHeader);
constexpr unsigned long KVM_GET_CPUID2_ = _IOWR(KVMIO, 0x91, CpuidHeader);

// struct kvm_xsave is 4096 bytes in C; its flexible tail makes it 4100 in
// C++, and the request numbers with it.
struct XsaveArea {
  __u32 region[1024];
};
static_assert(sizeof(XsaveArea) == 4096, "struct kvm_xsave is 4096 bytes");
constexpr unsigned long KVM_GET_XSAVE_ = _IOR(KVMIO, 0xa4, XsaveArea);
constexpr unsigned long KVM_SET_XSAVE_ = _IOW(KVMIO, 0xa5, XsaveArea);
constexpr unsigned long KVM_GET_XSAVE2_ = _IOR(KVMIO, 0xcf, XsaveArea);

// KVM_SET_USER_MEMORY_REGION2 and KVM_CREATE_GUEST_MEMFD (Linux 6.8), for
// build machines whose headers predate them; the layout is the kernel ABI.
struct MemoryRegion2 {
  __u32 slot;
  __u32 flags;
  __u64 guest_phys_addr;
  __u64 memory_size;
  __u64 userspace_addr;
  __u64 guest_memfd_offset;
  __u32 guest_memfd;
  __u32 pad1;
  __u64 pad2[14];
};
static_assert(sizeof(MemoryRegion2) == 160, "struct kvm_userspace_memory_region2 is 160 bytes");
struct GuestMemfdRequest {
  __u64 size;
  __u64 flags;
  __u64 reserved[6];
};
constexpr unsigned long KVM_SET_USER_MEMORY_REGION2_ = _IOW(KVMIO, 0x49, MemoryRegion2);
constexpr unsigned long KVM_CREATE_GUEST_MEMFD_ = _IOWR(KVMIO, 0xd4, GuestMemfdRequest);
constexpr __u32 KVM_MEM_GUEST_MEMFD_ = 1u << 2;

struct IrqRoutingHeader {
  __u32 nr;
  __u32 flags;
};
using IrqRoutingBuffer = FlexBuffer<IrqRoutingHeader, kvm_irq_routing_entry>;
constexpr unsigned long KVM_SET_GSI_ROUTING_ = _IOW(KVMIO, 0x6a, IrqRoutingHeader);

}  // namespace nodekvm
