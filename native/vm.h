// A VM fd: memory slots (the one record of them), vCPU creation, VM-wide settings.
#pragma once

#include <napi.h>

#include <map>
#include <memory>
#include <vector>

#include "base/fd.h"
#include "base/table.h"

namespace nodekvm {

class Memory;
class Vcpu;
class VcpuCore;

// A VM has no JavaScript wrapper: the environment's table owns it and lib/
// names it by slot (base/table.h).
class Vm {
 public:
  static constexpr const char* kSlotOf = "a VM's slot";
  Vm(Napi::Env env, UniqueFd fd, size_t vcpuMmapSize);
  ~Vm();
  bool Releasable() const { return true; }
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;
  static Napi::Object DefineFunctions(Napi::Env env);

  // Before every KVM_RUN: throws (and removes the slot) if a caller-owned
  // buffer behind a slot was detached or moved.
  void ValidateSlots(Napi::Env env);
  // The VM fd (-1 once closed), for vCPU ioctls that ask VM-wide caps.
  int fd() const { return fd_.get(); }
  // The dirty ring's bytes per vCPU (0: not enabled), for the vCPUs' harvest.
  uint32_t dirtyRingBytes() const { return dirtyRingBytes_; }

 private:
  struct Slot {
    uint32_t flags;
    uint64_t gpa;
    uint64_t size;
    uint64_t hva;
    uint64_t offset;                  // of the slot's first byte in the memory
    bool borrowed;                    // caller-owned buffer: check before each run
    Memory* memory;                   // alive through memoryRef
    Napi::ObjectReference memoryRef;  // lib's GuestMemory: keeps the memory alive while KVM maps it
    std::shared_ptr<int> pins;        // the memory's slot count
    std::shared_ptr<Mapping> mapping; // mapped memory: its pages, whatever finalizes first
  };

  int Fd(const char* syscall);
  Napi::Env Env() const { return Napi::Env(env_); }
  Napi::Value CheckExtension(const Args& info);
  void SetTssAddr(const Args& info);
  void SetIdentityMapAddr(const Args& info);
  Napi::Value SetUserMemoryRegion(const Args& info);
  Napi::Value CreateVcpu(const Args& info);
  Napi::Value Slots(const Args& info);
  Napi::Value GetSlotGeneration(const Args& info);
  void CreateIrqchip(const Args& info);
  Napi::Value GetIrqchip(const Args& info);
  void SetIrqchip(const Args& info);
  Napi::Value IrqLine(const Args& info);
  void SetGsiRouting(const Args& info);
  void CreatePit2(const Args& info);
  Napi::Value GetPit2(const Args& info);
  void SetPit2(const Args& info);
  Napi::Value GetClock(const Args& info);
  void SetClock(const Args& info);
  void SetMsrFilter(const Args& info);
  Napi::Value CreateGuestMemfd(const Args& info);
  void GetDirtyLog(const Args& info);
  void ClearDirtyLog(const Args& info);
  Napi::Value EnableCap(const Args& info);
  Napi::Value GetStatsFd(const Args& info);
  Napi::Value GetFd(const Args& info);
  void Close(const Args& info);
  void CloseAll();
  int DeleteSlot(uint32_t id);
  void SetBorrowedSlots(size_t n);

  UniqueFd fd_;
  size_t vcpuMmapSize_ = 0;
  std::map<uint32_t, Slot> slots_;
  uint64_t slotGeneration_ = 0;  // bumped on every change, so lib/ knows when to re-read slots()
  size_t borrowedSlots_ = 0;  // slots whose memory needs ValidateSlots (SetBorrowedSlots)
  std::vector<std::shared_ptr<VcpuCore>> vcpus_;
  napi_env env_;
  std::shared_ptr<Table<Vcpu>> runTable_;  // where its vCPUs are; outlives the environment's data
  std::vector<uint32_t> vcpuSlots_;        // its vCPUs' slots there, to forget it without a scan of the table

  // Eventfds and rings (eventfd.cc, rings.cc).
  void IoEventFd(const Args& info);
  void IrqFd(const Args& info);
  void CoalescedZone(const Args& info);
  void EnableDirtyRing(const Args& info);
  Napi::Value ResetDirtyRings(const Args& info);
  Napi::Value GetDirtyRingBytes(const Args& info);
  uint32_t dirtyRingBytes_ = 0;
};

}  // namespace nodekvm
