// struct kvm_cpuid2 as the kernel sees it. In C++ the uapi header's
// flexible array (__DECLARE_FLEX_ARRAY) adds padding, which changes both
// the entries' offset and the size encoded in the ioctl numbers, so the
// kernel would reject the ioctls with EINVAL.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <vector>

namespace nodekvm {

struct CpuidHeader {
  __u32 nent;
  __u32 padding;
};
static_assert(sizeof(CpuidHeader) == 8, "struct kvm_cpuid2 header is 8 bytes");

constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);

// A kvm_cpuid2 with room for n entries.
class CpuidBuffer {
 public:
  explicit CpuidBuffer(uint32_t n) : bytes_(sizeof(CpuidHeader) + n * sizeof(kvm_cpuid_entry2)) {
    header()->nent = n;
  }
  CpuidHeader* header() { return reinterpret_cast<CpuidHeader*>(bytes_.data()); }
  kvm_cpuid_entry2* entries() { return reinterpret_cast<kvm_cpuid_entry2*>(bytes_.data() + sizeof(CpuidHeader)); }
  unsigned long arg() { return reinterpret_cast<unsigned long>(bytes_.data()); }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace nodekvm
