/**
 * node-kvm: Linux KVM from Node.js. Open `/dev/kvm` with {@link Kvm.open},
 * create a {@link Vm}, give it {@link GuestMemory} through slots, create a
 * {@link Vcpu} and run it; every exit comes back as a typed {@link VmExit}.
 *
 * Three layers, each importing only the ones before it: `core` (the kernel
 * objects), `guest` (building and running guests), `inspect` (looking at
 * KVM from outside). See ARCHITECTURE.md.
 * @packageDocumentation
 */
export { Kvm, type CreateVmOptions } from './core/kvm';
export { Vm, type SlotOptions, type GsiRoute, type MsrFilter } from './core/vm';
export { IrqChip, type PicState, type IoapicState, type PitState, type PitChannel, type ClockData } from './core/irqchip';
export { Vcpu, ASYNC_TURN_BUDGET_MS, kickVcpu, setKickSignal, kickSignal, type Translation, type GuestDebugOptions, type RunOptions, type RunAsyncOptions } from './core/vcpu';
export { GuestMemory, PAGE_SIZE, MAX_VIEW, type AllocateOptions, type GuestMemorySource, type WasmMemory } from './core/memory';
export { MemorySlot } from './core/slot';
export { GuestMemfd } from './core/guest-memfd';
export type { Snapshot, SnapshotOptions, VmSnapshot, VcpuSnapshot, Restored } from './core/snapshot';
export { KvmError } from './core/errors';
export { Cap, ExitReason, MemFlag, SystemEventType, KVM_API_VERSION } from './core/constants';
export type {
  VmExit, IoExit, MmioExit, HltExit, ShutdownExit, IntrExit, FailEntryExit,
  InternalErrorExit, DebugExit, SystemEventExit, ExceptionExit, UnknownExit, HypercallExit, RdmsrExit,
  WrmsrExit, IoapicEoiExit, TprAccessExit, MemoryFaultExit, NotifyExit, SimpleExit,
} from './core/exits';
export { decodeExit } from './core/exits';
export type { Regs, RegsInput, Sregs, SregsInput, Segment, DescriptorTable, Numeric } from './core/regs';
export { probeKvm, describeKvm, type KvmProbe, type VendorModule } from './inspect/host';
export type { CpuidEntry } from './core/cpuid';
export { CR0, CR4, EFER, FLAT, SELECTOR, encodeDescriptor, decodeDescriptor, segmentFor, flatGdt, type SegmentDescriptor } from './guest/x86';
export { PageTableBuilder, walkPageTables, PTE, type PagingMode, type PageSize, type PageMapping, type Walk, type WalkStep, type Range, type PhysAccess } from './guest/paging';
export { setupMode, modeOf, type GuestMode, type Layout, type ModeOptions, type ModeSetup } from './guest/modes';
export { loadElf, loadFlat, ElfError, type LoadedProgram } from './guest/loader';
export { GuestError, guestError, disassemble } from './guest/report';
export { runUntilHalt, runUntilHaltAsync, handleExit, type RunHandlers, type AsyncRunHandlers, type ExitAction } from './guest/run';
export { realModeGuest, GUEST_CODE, type TinyGuest, type TinyGuestOptions } from './guest/fixture';
export { DirtyLog } from './core/dirty';
export { EventFd, IoEventFd, IrqFd, type IoEventFdOptions, type IrqFdOptions } from './core/eventfd';
export { CoalescedZone, coalescedRingSize, type CoalescedZoneOptions, type CoalescedWrite, type CoalescedCallback, type DirtyGfn } from './core/rings';
export { MP_STATES, type Fpu, type DebugRegs, type Xcrs, type MpState, type VcpuEvents, type VcpuEventsInput } from './core/state';
export type { MsrEntry } from './core/binding';
export { KvmStats, type StatDescriptor, type StatType, type StatUnit } from './core/stats';
export { hvaToHpa, resolveGpa, type AddressChain, type HostPage } from './inspect/address';
export { eptIndex, predictTree, tables, leaves, newMmuPage, childAt, indexIn, type EptIndex, type MmuPage, type SptLeaf, type SptLink } from './inspect/ept';
export { MmuTrace, parseTrace, rebuildMmuTree, traceUnavailable, type MmuEvent, type RebuiltTree, type SpteFormat } from './inspect/trace';
export { renderMmuText, renderMmuSvg, type RenderOptions } from './inspect/render';
