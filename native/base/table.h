// Native objects with no JavaScript wrapper: an environment's table owns
// them and JavaScript names each by a number (its slot), which every
// function of that kind takes first. Making a wrapper (napi_new_instance,
// napi_wrap's private property) and finding it again on every call
// (napi_unwrap, a private-property lookup) cost more than the ioctls of a
// short VM's life in user time. lib/ releases a slot when its handle is
// garbage-collected; the table is emptied at the environment's teardown.
#pragma once

#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "errors.h"

namespace nodekvm {

// The arguments of a call after the slot: what node-addon-api's
// CallbackInfo gives a method.
class Args {
 public:
  Args(napi_env env, size_t argc, const napi_value* argv) : env_(env), argc_(argc), argv_(argv) {}
  Napi::Env Env() const { return Napi::Env(env_); }
  size_t Length() const { return argc_; }
  Napi::Value operator[](size_t i) const { return i < argc_ ? Napi::Value(env_, argv_[i]) : Env().Undefined(); }

 private:
  napi_env env_;
  size_t argc_;
  const napi_value* argv_;
};

// The slot a JavaScript value names: 0 (never a slot) for anything but
// an integer in uint32's range, so that 1.5 names no slot rather than 1.
inline uint32_t SlotNumber(napi_env env, napi_value v) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0) || d != std::floor(d)) return 0;
  return static_cast<uint32_t>(d);
}
inline uint32_t SlotNumber(const Napi::Value& v) { return SlotNumber(v.Env(), v); }

template <class T>
class Table {
 public:
  uint32_t Add(std::unique_ptr<T> object) {
    uint32_t i;
    if (!free_.empty()) {
      i = free_.back();
      free_.pop_back();
    } else {
      i = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    }
    Entry& e = entries_[i];
    // A number that no earlier object at this index had (until 4096 reuses).
    e.slot = (e.slot + (1u << kIndexBits)) & ~kIndexMask;
    if (e.slot == 0) e.slot = 1u << kIndexBits;
    e.slot |= i;
    e.object = std::move(object);
    return e.slot;
  }

  T* Find(uint32_t slot) const {
    uint32_t i = slot & kIndexMask;
    return i < entries_.size() && entries_[i].slot == slot ? entries_[i].object.get() : nullptr;
  }

  // Destroys the object; a stale slot does nothing. The entry is free
  // before the destructor runs, so that it may use the table.
  void Remove(uint32_t slot) {
    uint32_t i = slot & kIndexMask;
    if (i >= entries_.size() || entries_[i].slot != slot || !entries_[i].object) return;
    std::unique_ptr<T> gone = std::move(entries_[i].object);
    free_.push_back(i);
  }

  // Empties the table at the environment's teardown, in a cleanup hook
  // (references can still be dropped then); `table` is the Table. Hooks
  // run outside any handle scope, and a destructor may make handles.
  static void TeardownHook(void* table) {
    auto* t = static_cast<Table*>(table);
    napi_handle_scope scope;
    if (napi_open_handle_scope(t->env_, &scope) != napi_ok) return;
    std::vector<Entry> gone = std::move(t->entries_);
    t->entries_.clear();
    t->free_.clear();
    gone.clear();
    napi_close_handle_scope(t->env_, scope);
  }

  explicit Table(napi_env env) : env_(env) {}
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

 private:
  static constexpr uint32_t kIndexBits = 20;
  static constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;
  struct Entry {
    std::unique_ptr<T> object;
    uint32_t slot = 0;  // index, and in the high bits a count of its reuses
  };
  napi_env env_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
};

// A function of T by slot: finds the object named by argv[0] in the table
// (the function's data), then runs the method with the arguments after it.
// T::kSlotOf names the slot in errors ("a vCPU's slot").
template <class T, typename R, R (T::*M)(const Args&)>
napi_value CallBySlot(napi_env env, napi_callback_info cbinfo) {
  constexpr size_t kMax = 10;  // the slot and at most nine arguments
  size_t argc = kMax;
  napi_value argv[kMax];
  void* table;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &table) != napi_ok) return nullptr;
  argc = std::min(argc, kMax);
  try {
    T* object = argc > 0 ? static_cast<const Table<T>*>(table)->Find(SlotNumber(env, argv[0])) : nullptr;
    if (object == nullptr) throw ArgTypeError(Napi::Env(env), "slot", T::kSlotOf);
    Args args(env, argc - 1, argv + 1);
    if constexpr (std::is_void_v<R>) {
      (object->*M)(args);
      return nullptr;
    } else {
      return (object->*M)(args);
    }
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

// release(slot): lib/'s handle was garbage-collected. T::Releasable()
// may refuse (memory that a slot still maps).
template <class T>
napi_value ReleaseBySlot(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  void* table;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &table) == napi_ok && argc == 1) {
    auto* t = static_cast<Table<T>*>(table);
    uint32_t slot = SlotNumber(env, argv[0]);
    T* object = t->Find(slot);
    if (object != nullptr && object->Releasable()) t->Remove(slot);
  }
  return nullptr;
}

// Adds the function `name` over `table` to `o`.
inline void AddSlotFunction(Napi::Env env, Napi::Object o, const char* name, napi_callback cb, void* table) {
  napi_value fn;
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, table, &fn));
  o.Set(name, Napi::Value(env, fn));
}

}  // namespace nodekvm
