/**
 * node-kvm: Linux KVM from Node.js. Open `/dev/kvm` with {@link Kvm.open},
 * create a {@link Vm}, give it {@link GuestMemory} through slots, create a
 * {@link Vcpu} and run it; every exit comes back as a typed {@link VmExit}.
 * @packageDocumentation
 */
export { Kvm, type CreateVmOptions } from './kvm';
export { Vm, type SlotOptions } from './vm';
export { Vcpu } from './vcpu';
export { GuestMemory, PAGE_SIZE, type AllocateOptions, type GuestMemorySource, type WasmMemory } from './memory';
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
