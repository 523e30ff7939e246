/** `KVM_CAP_*` numbers for {@link Kvm.checkExtension} (stable kernel ABI). */
export const Cap = {
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  NR_MEMSLOTS: 10,
  SET_GUEST_DEBUG: 23,
  SET_IDENTITY_MAP_ADDR: 37,
  READONLY_MEM: 81,
  MAX_VCPUS: 66,
  IMMEDIATE_EXIT: 136,
  MANUAL_DIRTY_LOG_PROTECT2: 168,
  BINARY_STATS_FD: 203,
  IRQCHIP: 0,
  HLT: 1,
  MP_STATE: 14,
  COALESCED_MMIO: 15,
  IRQ_ROUTING: 25,
  IRQFD: 32,
  PIT2: 33,
  PIT_STATE2: 35,
  IOEVENTFD: 36,
  ADJUST_CLOCK: 39,
  VCPU_EVENTS: 41,
  DEBUGREGS: 50,
  XSAVE: 55,
  XCRS: 56,
  GET_TSC_KHZ: 61,
  SYNC_REGS: 74,
  X86_SMM: 117,
  SPLIT_IRQCHIP: 121,
  MAX_VCPU_ID: 128,
  COALESCED_PIO: 162,
  NESTED_STATE: 157,
  GET_MSR_FEATURES: 153,
  X86_USER_SPACE_MSR: 188,
  X86_MSR_FILTER: 189,
  DIRTY_LOG_RING: 192,
  DIRTY_LOG_RING_ACQ_REL: 223,
  IRQFD_RESAMPLE: 82,
  EXIT_HYPERCALL: 201,
  XSAVE2: 208,
  USER_MEMORY2: 231,
  GUEST_MEMFD: 234,
} as const;

/** `KVM_MEM_*` flags of a memory slot, as in `struct kvm_memory_slot`. */
export const MemFlag = {
  /** Track writes in a dirty bitmap (`KVM_MEM_LOG_DIRTY_PAGES`). */
  LOG_DIRTY_PAGES: 1 << 0,
  /** Guest writes exit as MMIO instead of changing memory (`KVM_MEM_READONLY`). */
  READONLY: 1 << 1,
  /** The slot is bound to a guest_memfd (`KVM_MEM_GUEST_MEMFD`; set by `addSlot({ guestMemfd })`). */
  GUEST_MEMFD: 1 << 2,
} as const;

/** `KVM_EXIT_*` numbers found in `kvm_run.exit_reason`. */
export const ExitReason = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26,
  HYPERV: 27,
  X86_RDMSR: 29,
  X86_WRMSR: 30,
  DIRTY_RING_FULL: 31,
  AP_RESET_HOLD: 32,
  X86_BUS_LOCK: 33,
  XEN: 34,
  NOTIFY: 37,
  MEMORY_FAULT: 39,
} as const;

/** The `KVM_SYSTEM_EVENT_*` types of a `system_event` exit. */
export const SystemEventType = {
  1: 'shutdown',
  2: 'reset',
  3: 'crash',
  4: 'wakeup',
  5: 'suspend',
  6: 'sev_term',
} as const;

/** KVM_GET_API_VERSION must return this: the only stable KVM API. */
export const KVM_API_VERSION = 12;
