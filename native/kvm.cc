#include "kvm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <string>

#include "addon.h"
#include "cpuid.h"
#include "errors.h"
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
                         InstanceMethod<&Kvm::Close>("close"),
                         InstanceAccessor<&Kvm::GetFd>("fd"),
                     });
}

// new Kvm(path): opens the device; lib/kvm.ts checks the API version.
Kvm::Kvm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Kvm>(info) {
  Napi::Env env = info.Env();
  std::string path = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value()
                                         : std::string("/dev/kvm");
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw SysError(env, errno, "open", path);
  fd_.Reset(fd);
}

int Kvm::Fd(const char* syscall) {
  if (!fd_.valid()) throw ClosedError(Env(), "Kvm", syscall);
  return fd_.get();
}

Napi::Value Kvm::ApiVersion(const Napi::CallbackInfo& info) {
  int r = IoctlRetry(Fd("KVM_GET_API_VERSION"), KVM_GET_API_VERSION, 0);
  if (r < 0) throw SysError(info.Env(), errno, "KVM_GET_API_VERSION");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Kvm::CheckExtension(const Napi::CallbackInfo& info) {
  int fd = Fd("KVM_CHECK_EXTENSION");
  unsigned long cap = info[0].As<Napi::Number>().Uint32Value();
  int r = IoctlRetry(fd, KVM_CHECK_EXTENSION, cap);
  if (r < 0) throw SysError(info.Env(), errno, "KVM_CHECK_EXTENSION");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Kvm::VcpuMmapSize(const Napi::CallbackInfo& info) {
  int r = IoctlRetry(Fd("KVM_GET_VCPU_MMAP_SIZE"), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (r < 0) throw SysError(info.Env(), errno, "KVM_GET_VCPU_MMAP_SIZE");
  return Napi::Number::New(info.Env(), r);
}

Napi::Value Kvm::CreateVm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_CREATE_VM");
  unsigned long type = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  int mmapSize = IoctlRetry(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmapSize < 0) throw SysError(env, errno, "KVM_GET_VCPU_MMAP_SIZE");
  // IoctlRetry covers the spurious EINTR that KVM_CREATE_VM can return.
  int vmfd = IoctlRetry(fd, KVM_CREATE_VM, type);
  if (vmfd < 0) throw SysError(env, errno, "KVM_CREATE_VM");
  return Vm::NewInstance(env, UniqueFd(vmfd), static_cast<size_t>(mmapSize));
}

// KVM_GET_SUPPORTED_CPUID: grows the buffer while the kernel says E2BIG.
Napi::Value Kvm::GetSupportedCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd("KVM_GET_SUPPORTED_CPUID");
  for (uint32_t n = 64;; n *= 2) {
    CpuidBuffer cpuid(n);
    if (IoctlRetry(fd, kGetSupportedCpuid, cpuid.arg()) < 0) {
      if (errno == E2BIG && n < 4096) continue;
      throw SysError(env, errno, "KVM_GET_SUPPORTED_CPUID");
    }
    uint32_t count = cpuid.header()->nent;
    Napi::Array out = Napi::Array::New(env, count);
    for (uint32_t i = 0; i < count; i++) {
      const kvm_cpuid_entry2& e = cpuid.entries()[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("function", Napi::Number::New(env, e.function));
      o.Set("index", Napi::Number::New(env, e.index));
      o.Set("flags", Napi::Number::New(env, e.flags));
      o.Set("eax", Napi::Number::New(env, e.eax));
      o.Set("ebx", Napi::Number::New(env, e.ebx));
      o.Set("ecx", Napi::Number::New(env, e.ecx));
      o.Set("edx", Napi::Number::New(env, e.edx));
      out.Set(i, o);
    }
    return out;
  }
}

Napi::Value Kvm::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_.get());
}

void Kvm::Close(const Napi::CallbackInfo&) { fd_.Reset(); }

}  // namespace nodekvm
