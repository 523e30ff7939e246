#include "memory.h"

#include <linux/mman.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <string>

#include "base/addon.h"
#include "base/args.h"
#include "base/buffers.h"
#include "base/errors.h"

namespace nodekvm {

namespace {
constexpr size_t kHugePage = 2u << 20;

std::atomic<double> gMaxView{4294967296.0};

// The addon's live mappings by start address, so that GuestMemory.from()
// of a view into one shares its pages instead of borrowing them blindly.
// A mapping leaves it as it dies (its last holder may be a buffer whose
// finalizer runs only when the event loop turns: a synchronous loop of
// allocate/close must not make every registration slower). Each mapping
// holds the registry, so that one dying late in the process's exit (a
// worker's teardown) never finds it destroyed.
struct Registry {
  std::mutex mu;
  std::map<uintptr_t, std::weak_ptr<Mapping>> byAddress;
};

std::shared_ptr<Registry> TheRegistry() {
  static const auto registry = std::make_shared<Registry>();
  return registry;
}

// Leaves the registry before ~Mapping unmaps, so an address is never
// registered twice.
class RegisteredMapping : public Mapping {
 public:
  RegisteredMapping(uint8_t* base, size_t size) : Mapping(base, size), registry_(TheRegistry()) {}
  RegisteredMapping(const RegisteredMapping&) = delete;
  RegisteredMapping& operator=(const RegisteredMapping&) = delete;
  ~RegisteredMapping() {
    std::lock_guard<std::mutex> lock(registry_->mu);
    registry_->byAddress.erase(reinterpret_cast<uintptr_t>(data()));
  }

 private:
  std::shared_ptr<Registry> registry_;
};

std::shared_ptr<Mapping> NewMapping(uint8_t* base, size_t size) {
  auto m = std::make_shared<RegisteredMapping>(base, size);
  auto registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry->mu);
  registry->byAddress[reinterpret_cast<uintptr_t>(base)] = m;
  return m;
}

std::shared_ptr<Mapping> FindMapping(const uint8_t* p, size_t len) {
  auto registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry->mu);
  auto it = registry->byAddress.upper_bound(reinterpret_cast<uintptr_t>(p));
  if (it == registry->byAddress.begin()) return nullptr;
  std::shared_ptr<Mapping> m = std::prev(it)->second.lock();
  if (!m || p < m->data() || p + len > m->data() + m->size()) return nullptr;
  return m;
}

}  // namespace

Napi::Object Memory::DefineFunctions(Napi::Env env) {
  Table<Memory>* table = Data(env).memoryTable.get();
  Napi::Object o = Napi::Object::New(env);
  auto add = [&](const char* name, napi_callback cb) { AddSlotFunction(env, o, name, cb, table); };
  // allocate(size, thp): maps fresh memory (thp: 1 ask for transparent huge
  // pages, 0 refuse them, -1 leave the system default, 2 hugetlbfs pages).
  o.Set("allocate", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    auto m = std::make_unique<Memory>();
    int thp = static_cast<int>(ReadInt(info[1], "thp", -1, 2));
    m->InitMapped(info.Env(), static_cast<size_t>(ReadU64(info[0], "size", SIZE_MAX / 2)), thp);
    return Napi::Number::New(info.Env(), Data(info.Env()).memoryTable->Add(std::move(m)));
  }, "allocate"));
  // borrow(kind, source, view): a caller's page-aligned buffer, where view
  // is a Uint8Array over all of it (N-API cannot read a SharedArrayBuffer's
  // address directly).
  o.Set("borrow", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    auto m = std::make_unique<Memory>();
    napi_value argv[3] = {info[0], info[1], info[2]};
    m->InitBorrowed(Args(info.Env(), 3, argv));
    return Napi::Number::New(info.Env(), Data(info.Env()).memoryTable->Add(std::move(m)));
  }, "borrow"));
  add("release", &ReleaseBySlot<Memory>);
  add("buffer", &CallBySlot<Memory, Napi::Value, &Memory::GetBuffer>);
  add("size", &CallBySlot<Memory, Napi::Value, &Memory::GetSize>);
  add("address", &CallBySlot<Memory, Napi::Value, &Memory::GetAddress>);
  add("slotCount", &CallBySlot<Memory, Napi::Value, &Memory::GetPins>);
  add("kind", &CallBySlot<Memory, Napi::Value, &Memory::GetKind>);
  add("markable", &CallBySlot<Memory, Napi::Value, &Memory::GetMarkable>);
  add("closed", &CallBySlot<Memory, Napi::Value, &Memory::GetClosed>);
  add("view", &CallBySlot<Memory, Napi::Value, &Memory::View>);
  add("close", &CallBySlot<Memory, void, &Memory::Close>);
  return o;
}

Memory* Memory::FromSlot(const Napi::Value& v, const char* name) {
  Memory* m = Data(v.Env()).memoryTable->Find(SlotNumber(v));
  if (m == nullptr) throw ArgTypeError(v.Env(), name, "a GuestMemory");
  return m;
}

void Memory::InitMapped(Napi::Env env, size_t size, int thp) {
  bool hugePages = thp == 1;
  if (size == 0 || size % PageSize() != 0) {
    throw OutOfRangeError(env, "size", "a positive multiple of the page size (" + std::to_string(PageSize()) + ")");
  }
  if (thp == 2) {
    InitHugetlb(env, size);
    return;
  }
  // Huge pages need 2 MiB alignment: over-map, then trim both ends.
  size_t extra = hugePages ? kHugePage : 0;
  void* raw = ::mmap(nullptr, size + extra, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw SysError(env, errno, "mmap", std::to_string(size) + " bytes");
  auto* base = static_cast<uint8_t*>(raw);
  if (hugePages) {
    uintptr_t addr = reinterpret_cast<uintptr_t>(base);
    uintptr_t aligned = (addr + kHugePage - 1) & ~(kHugePage - 1);
    size_t head = aligned - addr;
    if (head != 0) ::munmap(base, head);
    size_t tail = extra - head;
    if (tail != 0) ::munmap(reinterpret_cast<uint8_t*>(aligned) + size, tail);
    base = reinterpret_cast<uint8_t*>(aligned);
    ::madvise(base, size, MADV_HUGEPAGE);  // advisory: THP may be off
  }
  if (thp == 0) ::madvise(base, size, MADV_NOHUGEPAGE);
  Adopt(env, base, size);
}

// 2 MiB pages from the hugetlbfs pool, reserved at mmap time so that a
// short pool fails here with ENOMEM instead of killing the process later.
void Memory::InitHugetlb(Napi::Env env, size_t size) {
  if (size % kHugePage != 0) {
    throw OutOfRangeError(env, "size", "a multiple of 2 MiB (2097152) for hugetlb pages");
  }
  void* raw = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
  if (raw == MAP_FAILED) {
    throw SysError(env, errno, "mmap",
                   std::to_string(size / kHugePage) +
                       " hugetlb pages of 2 MiB; reserve them first: echo N > /proc/sys/vm/nr_hugepages");
  }
  Adopt(env, static_cast<uint8_t*>(raw), size);
}

void Memory::SetMaxView(double bytes) { gMaxView = bytes; }

void Memory::Adopt(Napi::Env, uint8_t* base, size_t size) {
  mapping_ = NewMapping(base, size);
  data_ = base;
  size_ = size;
}

// The ArrayBuffer over addon-mapped memory, made on first use: V8 counts
// its length as external memory and, past a limit, runs a full garbage
// collection at once (~4 ms per 4 GiB buffer here), although the pages are
// only reserved (MAP_NORESERVE). Memory that JavaScript never reads as one
// buffer never pays for it.
void Memory::MakeBuffer(Napi::Env env) {
  // Past the runtime's limit V8 refuses the buffer and runs the finalizer
  // at once (and node-addon-api again later): such memory is reached
  // through View() windows only.
  if (static_cast<double>(size_) > gMaxView.load()) return;
  // The ArrayBuffer keeps its own reference, so the mapping outlives this
  // object for as long as JavaScript can still reach the bytes.
  auto keep = mapping_;
  Napi::ArrayBuffer ab = NewExternalBuffer(env, data_, size_, [keep](Napi::Env, void*) mutable { keep.reset(); });
  buffer_ = Napi::Persistent(Napi::Value(ab));
}

void Memory::InitBorrowed(const Args& info) {
  Napi::Env env = info.Env();
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  if (kind == "arraybuffer") {
    kind_ = Kind::kArrayBuffer;
  } else if (kind == "shared") {
    kind_ = Kind::kShared;
  } else if (kind == "wasm") {
    kind_ = Kind::kWasm;
    wasmSource_ = true;
  } else if (kind == "wasm-shared") {
    kind_ = Kind::kShared;  // never detached, never moved: no checks needed
    wasmSource_ = true;
  } else {
    throw ArgValueError(env, "kind", "must be 'arraybuffer', 'shared', 'wasm' or 'wasm-shared'");
  }
  Napi::Uint8Array view = ReadBytes(info[2], "view");
  data_ = view.Data();
  size_ = view.ByteLength();
  byteOffset_ = view.ByteOffset();
  size_t page = PageSize();
  if (size_ == 0 || size_ % page != 0) {
    throw ArgValueError(env, "source", "must be a positive multiple of " +
                            std::to_string(page) + " bytes, got " + std::to_string(size_));
  }
  if (reinterpret_cast<uintptr_t>(data_) % page != 0) {
    throw ArgValueError(env, "source", "must start on a page boundary (" +
                            std::to_string(page) +
                            " bytes); this one does not, and KVM maps whole pages. Use "
                            "GuestMemory.allocate() or a WebAssembly.Memory");
  }
  buffer_ = Napi::Persistent(info[1]);
  // A view of addon-mapped memory (another GuestMemory's buffer): share
  // the mapping, so that its pages outlive every slot that maps them here.
  mapping_ = FindMapping(data_, size_);
  // lib/ marks the rest of the plain ArrayBuffers untransferable, and
  // their detach keys must go before Node's teardown (should one be
  // external): buffers.h. Not a WebAssembly.Memory's: it is never
  // detachable, and on Node 24 its grow() aborts on a marked one.
  markable_ = kind_ == Kind::kArrayBuffer && mapping_ == nullptr && IsDetachable(env, info[1]);
  if (markable_) TrackedBuffers(env).TrackOnce(info[1].As<Napi::ArrayBuffer>());
}

bool Memory::StillValid(Napi::Env env) const {
  if (closed_) return false;
  Napi::Value source = buffer_.Value();
  Napi::ArrayBuffer ab;
  if (kind_ == Kind::kArrayBuffer) {
    ab = source.As<Napi::ArrayBuffer>();
  } else if (kind_ == Kind::kWasm) {
    // grow() detaches the old buffer; the memory is still good if the new
    // one starts at the same address.
    Napi::Value current = Data(env).wasmBuffer.Call(source, {});
    if (!current.IsArrayBuffer()) return false;
    ab = current.As<Napi::ArrayBuffer>();
  } else {
    return true;
  }
  return !ab.IsDetached() && static_cast<uint8_t*>(ab.Data()) + byteOffset_ == data_ &&
         ab.ByteLength() >= byteOffset_ + size_;
}

// view(offset, length): an ArrayBuffer over part of addon-mapped memory,
// for memory larger than one ArrayBuffer may be. It holds the pages.
Napi::Value Memory::View(const Args& info) {
  Napi::Env env = info.Env();
  if (closed_) throw ClosedError(env, "GuestMemory", "GuestMemory.view");
  if (kind_ != Kind::kMapped) throw Napi::TypeError::New(env, "view() is for addon-mapped memory");
  uint64_t offset = ReadU64(info[0], "offset");
  uint64_t length = ReadU64(info[1], "length");
  if (offset > size_ || length > size_ - offset || length == 0 || static_cast<double>(length) > gMaxView.load()) {
    throw OutOfRangeError(env, "length", "within the memory and <= the largest ArrayBuffer");
  }
  auto keep = mapping_;
  Napi::ArrayBuffer ab =
      NewExternalBuffer(env, data_ + offset, length, [keep](Napi::Env, void*) mutable { keep.reset(); });
  if (windows_.size() >= 64) {
    windows_.erase(std::remove_if(windows_.begin(), windows_.end(), [](auto& r) { return r.Value().IsEmpty(); }),
                   windows_.end());
  }
  windows_.push_back(Napi::Weak(ab));
  return ab;
}

Napi::Value Memory::GetBuffer(const Args& info) {
  if (!closed_ && buffer_.IsEmpty() && kind_ == Kind::kMapped) MakeBuffer(info.Env());
  if (closed_ || buffer_.IsEmpty()) return info.Env().Undefined();
  if (wasmSource_) return Data(info.Env()).wasmBuffer.Call(buffer_.Value(), {});
  return buffer_.Value();
}

Napi::Value Memory::GetSize(const Args& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(size_));
}

Napi::Value Memory::GetAddress(const Args& info) {
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data_)));
}

Napi::Value Memory::GetPins(const Args& info) {
  // The owner of a mapping counts the slots of its aliases too.
  return Napi::Number::New(info.Env(), kind_ == Kind::kMapped && mapping_ ? mapping_->pins.load() : *pins_);
}

Napi::Value Memory::GetMarkable(const Args& info) { return Napi::Boolean::New(info.Env(), markable_); }

Napi::Value Memory::GetKind(const Args& info) {
  static const char* const names[] = {"mapped", "arraybuffer", "shared", "wasm"};
  return Napi::String::New(info.Env(), names[static_cast<int>(kind_)]);
}

Napi::Value Memory::GetClosed(const Args& info) {
  return Napi::Boolean::New(info.Env(), closed_);
}

// Releases the memory now instead of at garbage collection. Refused while a
// slot maps it: KVM would be left pointing at freed pages.
void Memory::Close(const Args& info) {
  Napi::Env env = info.Env();
  if (closed_) return;
  int pins = kind_ == Kind::kMapped ? mapping_->pins.load() : *pins_;
  if (pins > 0) {
    throw SysError(env, EBUSY, "munmap",
                   "memory is registered in " + std::to_string(pins) +
                       " slot(s), directly or through GuestMemory.from() of its buffer; delete them or close the VM first");
  }
  closed_ = true;
  if (kind_ == Kind::kMapped) {
    // Detaching cuts JavaScript off; the pages go when the last holder
    // (a buffer's finalizer, an alias, a slot) drops its reference. (This
    // buffer is never marked untransferable by node-kvm; a user's mark is
    // cleared first: buffers.h.)
    if (!buffer_.IsEmpty()) DetachBuffer(buffer_.Value().As<Napi::ArrayBuffer>());
    for (auto& w : windows_) DetachBuffer(w.Value());
    windows_.clear();
    // The address range goes when the buffers' finalizers run, after the
    // event loop turns; the pages go now. No slot maps them (pins is 0), and
    // a buffer that escaped detaching (ArrayBuffer.prototype.transfer())
    // reads zeros instead of freed memory.
    ::madvise(data_, size_, MADV_DONTNEED);
  }
  mapping_.reset();
  buffer_.Reset();
  data_ = nullptr;
  size_ = 0;
}

}  // namespace nodekvm
