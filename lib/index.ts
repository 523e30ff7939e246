/**
 * node-kvm: Linux KVM from Node.js. Open `/dev/kvm` with {@link Kvm.open},
 * create a {@link Vm}, give it {@link GuestMemory} through slots, create a
 * {@link Vcpu} and run it; every exit comes back as a typed {@link VmExit}.
 * @packageDocumentation
 */
export { Kvm, type CreateVmOptions } from './kvm';
export { Vm, type SlotOptions } from './vm';
export { Vcpu, kickVcpu, setKickSignal, kickSignal, type Translation, type GuestDebugOptions, type RunHandlers, type AsyncRunHandlers, type RunOptions, type RunAsyncOptions } from './vcpu';
export { GuestMemory, PAGE_SIZE, MAX_VIEW, type AllocateOptions, type GuestMemorySource, type WasmMemory } from './memory';
export { MemorySlot } from './slot';
export { KvmError } from './errors';
export { Cap, ExitReason, MemFlag, SystemEventType, KVM_API_VERSION } from './constants';
export type {
  VmExit, IoExit, MmioExit, HltExit, ShutdownExit, IntrExit, FailEntryExit,
  InternalErrorExit, DebugExit, SystemEventExit, ExceptionExit, UnknownExit,
} from './exits';
export { decodeExit } from './exits';
export type { Regs, RegsInput, Sregs, SregsInput, Segment, DescriptorTable } from './regs';
export { probeKvm, describeKvm, type KvmProbe, type VendorModule } from './host';
export type { CpuidEntry } from './cpuid';
export { CR0, CR4, EFER, FLAT, SELECTOR, encodeDescriptor, decodeDescriptor, segmentFor, flatGdt, type SegmentDescriptor } from './x86';
export { PageTableBuilder, walkPageTables, PTE, type PagingMode, type PageSize, type PageMapping, type Walk, type WalkStep, type Range, type PhysAccess } from './paging';
export { setupMode, modeOf, type GuestMode, type Layout, type ModeOptions, type ModeSetup } from './modes';
export { loadElf, loadFlat, ElfError, type LoadedProgram } from './loader';
export { GuestError, guestError, disassemble } from './report';
export { DirtyLog } from './dirty';
export { KvmStats, type StatDescriptor, type StatType, type StatUnit } from './stats';
export { hvaToHpa, type AddressChain, type HostPage } from './address';
export { eptIndex, predictTree, tables, leaves, newMmuPage, childAt, indexIn, type EptIndex, type MmuPage, type SptLeaf, type SptLink } from './ept';
export { MmuTrace, parseTrace, rebuildMmuTree, traceUnavailable, type MmuEvent, type RebuiltTree, type SpteFormat } from './trace';
export { renderMmuText, renderMmuSvg, type RenderOptions } from './render';
