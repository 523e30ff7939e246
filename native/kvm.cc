#include "kvm.h"


#include <fcntl.h>
#include <linux/kvm.h>

#include <cerrno>
#include <string>

#include "base/addon.h"
#include "base/args.h"
#include "base/convert.h"
#include "base/errors.h"
#include "base/flex.h"
#include "base/table.h"
#include "base/ioctl.h"
#include "vm.h"

namespace nodekvm {

Napi::Function Kvm::Define(Napi::Env env) {
  return DefineClass(env, "Kvm",
                     {
                         InstanceMethod<&Kvm::ApiVersion>("apiVersion"),
                         InstanceMethod<&Kvm::CheckExtension>("checkExtension"),
                         InstanceMethod<&Kvm::VcpuMmapSize>("vcpuMmapSize"),
                         InstanceMethod<&Kvm::CreateVm>("createVm"),
                         InstanceMethod<&Kvm::GetSupportedCpuid>("getSupportedCpuid"),
                         InstanceMethod<&Kvm::GetMsrIndexList>("getMsrIndexList"),
                         InstanceMethod<&Kvm::GetMsrs>("getMsrs"),
                         InstanceMethod<&Kvm::Close>("close"),
                         InstanceAccessor<&Kvm::GetFd>("fd"),
                     });
}

// new Kvm(path): opens the device; lib/core/kvm.ts checks the API version.
Kvm::Kvm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Kvm>(info) {
  Napi::Env env = info.Env();
  std::string path = ReadPath(info[0], "path");
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw SysError(env, errno, "open", path);
  fd_.Reset(fd);
}

int Kvm::Fd(const char* syscall) {
  if (!fd_.valid()) throw ClosedError(Env(), "Kvm", syscall);
  return fd_.get();
}

Napi::Value Kvm::ApiVersion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_GET_API_VERSION"), NODEKVM_IOCTL(KVM_GET_API_VERSION)));
}

Napi::Value Kvm::CheckExtension(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_CHECK_EXTENSION");
  uint32_t cap = ReadU32(info[0], "cap");
  return Napi::Number::New(env, CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_CHECK_EXTENSION), cap));
}

Napi::Value Kvm::VcpuMmapSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, CheckedIoctl(env, Fd("KVM_GET_VCPU_MMAP_SIZE"), NODEKVM_IOCTL(KVM_GET_VCPU_MMAP_SIZE)));
}

// createVm(type): KVM_CREATE_VM (IoctlRetry covers its spurious EINTR).
Napi::Value Kvm::CreateVm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_CREATE_VM");
  uint32_t type = ReadU32(info[0], "type");
  // The same for every VM of this /dev/kvm: asked once.
  if (vcpuMmapSize_ == 0) vcpuMmapSize_ = CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_GET_VCPU_MMAP_SIZE));
  int mmapSize = vcpuMmapSize_;
  int vmfd = CheckedIoctl(env, fd, NODEKVM_IOCTL(KVM_CREATE_VM), type);
  UniqueFd owned(vmfd);
  return Napi::Number::New(env, Data(env).vmTable->Add(std::make_unique<Vm>(env, std::move(owned), static_cast<size_t>(mmapSize))));
}

// KVM_GET_SUPPORTED_CPUID: grows the buffer while the kernel says E2BIG.
Napi::Value Kvm::GetSupportedCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_GET_SUPPORTED_CPUID");
  CpuidBuffer cpuid;
  for (uint32_t n = 64;; n *= 2) {
    cpuid.Reserve(n);
    cpuid.header()->nent = n;
    if (IoctlRetry(fd, KVM_GET_SUPPORTED_CPUID_, cpuid.arg()) == 0) break;
    if (errno != E2BIG || n >= 4096) throw SysError(env, errno, "KVM_GET_SUPPORTED_CPUID");
  }
  uint32_t count = cpuid.header()->nent;
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, CpuidEntryToJs(env, cpuid.entries()[i]));
  return out;
}

// getMsrIndexList(features): KVM_GET_MSR_INDEX_LIST (the MSRs a vCPU
// saves) or KVM_GET_MSR_FEATURE_INDEX_LIST (the feature MSRs /dev/kvm
// reports), growing the buffer while the kernel says E2BIG.
Napi::Value Kvm::GetMsrIndexList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool features = ReadBool(info[0], "features");
  const char* name = features ? "KVM_GET_MSR_FEATURE_INDEX_LIST" : "KVM_GET_MSR_INDEX_LIST";
  int fd = Fd(name);
  MsrListBuffer list;
  for (uint32_t n = 256;; n *= 2) {
    list.Reserve(n);
    list.header()->nmsrs = n;
    if (IoctlRetry(fd, features ? KVM_GET_MSR_FEATURE_INDEX_LIST_ : KVM_GET_MSR_INDEX_LIST_, list.arg()) == 0) break;
    if (errno != E2BIG || n >= 65536) throw SysError(env, errno, name);
  }
  uint32_t count = list.header()->nmsrs;
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, Napi::Number::New(env, list.entries()[i]));
  return out;
}

// getMsrs(indices): KVM_GET_MSRS on /dev/kvm, the feature MSRs.
Napi::Value Kvm::GetMsrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MsrsBuffer msrs;
  MsrIndicesFromJs(info[0], msrs);
  int got = CheckedIoctl(env, Fd("KVM_GET_MSRS"), Ioctl{KVM_GET_MSRS_, "KVM_GET_MSRS"}, msrs.arg());
  return MsrEntriesToJs(env, msrs.entries(), static_cast<uint32_t>(got));
}

Napi::Value Kvm::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_.get()); }

void Kvm::Close(const Napi::CallbackInfo&) { fd_.Reset(); }

}  // namespace nodekvm
