// Loads the compiled addon and describes its (internal) shape.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** @internal */
export interface NativeKvm {
  readonly fd: number;
  apiVersion(): number;
  checkExtension(cap: number): number;
  vcpuMmapSize(): number;
  createVm(type: number): NativeVm;
  getSupportedCpuid(): import('./cpuid').CpuidEntry[];
  getMsrIndexList(features: boolean): number[];
  getMsrs(indices: number[]): MsrEntry[];
  close(): void;
}

/** @internal */
export interface NativeVm {
  readonly fd: number;
  checkExtension(cap: number): number;
  setTssAddr(addr: number | bigint): void;
  setIdentityMapAddr(addr: number | bigint): void;
  setUserMemoryRegion(
    slot: number,
    flags: number,
    gpa: number | bigint,
    size: number | bigint,
    memory?: NativeMemory,
    offset?: number | bigint,
    guestMemfd?: number,
    guestMemfdOffset?: number,
  ): [hva: bigint, slotGeneration: number];
  createGuestMemfd(size: number, flags: number): number;
  createVcpu(id: number): NativeVcpu;
  slots(): NativeSlot[];
  createIrqchip(): void;
  getIrqchip(chipId: number): Uint8Array;
  setIrqchip(chipId: number, bytes: Uint8Array): void;
  irqLine(irq: number, level: number): number;
  setGsiRouting(entries: object[]): void;
  createPit2(flags: number): void;
  getPit2(): Uint8Array;
  setPit2(bytes: Uint8Array): void;
  getClock(): Uint8Array;
  setClock(bytes: Uint8Array): void;
  setMsrFilter(flags: number, ranges: { flags: number; base: number; nmsrs: number; bitmap: Uint8Array }[]): void;
  readonly slotGeneration: number;
  getDirtyLog(slot: number, bitmap: Uint8Array): void;
  clearDirtyLog(slot: number, firstPage: bigint | number, numPages: number, bitmap: Uint8Array): void;
  enableCap(cap: number, args: (bigint | number)[]): number;
  getStatsFd(): number;
  close(): void;
  // eventfds and rings (native/eventfd.cc, native/rings.cc)
  ioeventfd(eventfd: NativeEventFd, address: bigint, length: number, flags: number, datamatch: bigint): void;
  irqfd(eventfd: NativeEventFd, gsi: number, flags: number, resample?: NativeEventFd): void;
  coalescedZone(register: boolean, address: bigint, size: number, pio: boolean): void;
  enableDirtyRing(bytes: number, acqRel: boolean): void;
  resetDirtyRings(): number;
  readonly dirtyRingBytes: number;
}

/** @internal An eventfd (native/eventfd.cc). */
export interface NativeEventFd {
  readonly fd: number;
  readonly pending: number;
  write(value: bigint): void;
  read(): bigint | undefined;
  wait(): Promise<bigint>;
  close(): void;
}

/** @internal The vCPU state structs the addon reads and writes as bytes. */
export type StateKind = 'regs' | 'sregs' | 'fpu' | 'lapic' | 'xsave' | 'xcrs' | 'debugregs' | 'mpState' | 'events';

/** A model-specific register: its index and 64-bit value. */
export interface MsrEntry {
  index: number;
  value: bigint;
}

/** @internal A slot as the addon records it. */
export interface NativeSlot {
  id: number;
  flags: number;
  guestPhysAddr: bigint;
  size: number;
  userspaceAddr: bigint;
  offset: number;
  memory: NativeMemory;
}

/** @internal */
export interface NativeVcpu {
  readonly fd: number;
  harvestDirtyRing(slots: Uint32Array, offsets: BigUint64Array): number; // native/rings.cc
  readonly id: number;
  readonly running: boolean;
  readonly kickHandle: bigint;
  /** KVM_GET_<kind>, into `into` (exactly the struct's size) when given. */
  getState(kind: StateKind, into?: Uint8Array): Uint8Array;
  setState(kind: StateKind, bytes: Uint8Array): void;
  getNestedState(): Uint8Array | null;
  setNestedState(bytes: Uint8Array): void;
  getMsrs(indices: number[]): MsrEntry[];
  setMsrs(entries: MsrEntry[]): number;
  getCpuid(): import('./cpuid').CpuidEntry[];
  getTscKhz(): number;
  setTscKhz(khz: number): void;
  interrupt(irq: number): void;
  nmi(): void;
  smi(): void;
  enableCap(cap: number, args: bigint[]): number;
  setSyncRegs(mask: number): void;
  completePendingIo(): void;
  readonly runBuffer: ArrayBuffer;
  /** This vCPU's number for {@link Binding.runVcpu}. */
  readonly runSlot: number;
  /** The exit reason when it came within spinUs, else a Promise of it (-1: collected). */
  runAsync(spinUs?: number, parked?: boolean): number | Promise<number>;
  park(): void;
  unpark(): void;
  kick(): boolean;
  /** KVM_GET_REGS into 18 words, in kvm_regs' order. */
  getRegs(into: BigUint64Array): void;
  setRegs(words: BigUint64Array): void;
  setCpuid(entries: import('./cpuid').CpuidEntry[]): void;
  translate(address: bigint | number): import('./vcpu').Translation;
  setGuestDebug(control: number, debugregs: bigint[]): void;
  getStatsFd(): number;
  close(): void;
}

/** @internal */
export interface NativeMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer | undefined;
  readonly size: number;
  readonly address: bigint;
  readonly slotCount: number;
  readonly kind: 'mapped' | 'arraybuffer' | 'shared' | 'wasm';
  readonly closed: boolean;
  readonly aliased: boolean;
  view(offset: number, length: number): ArrayBuffer;
  close(): void;
}

/** @internal */
export interface Binding {
  Kvm: new (path: string) => NativeKvm;
  Memory: {
    new (size: number, thp: 2 | 1 | 0 | -1): NativeMemory;
    new (kind: 'arraybuffer' | 'shared' | 'wasm' | 'wasm-shared', source: object, view: Uint8Array): NativeMemory;
  };
  setErrorFactory(f: (errno: number, syscall: string, detail: string) => Error): void;
  setMaxView(bytes: number): void;
  setKickSignal(signo: number): void;
  kickSignal(): number;
  kickVcpu(handle: bigint): boolean;
  /** One sync run of the vCPU with this runSlot: the exit reason. */
  runVcpu(slot: number, timeoutMs?: number): number;
  runLayout: Record<string, number>;
  stateLayouts: Record<string, Record<string, number>>;
  constants: Record<string, number>;
  EventFd: new () => NativeEventFd;
  ringLayouts: Record<string, number>;
}

const root = join(__dirname, '..', '..'); // dist/core or lib/core -> the package
const sourceBuild = join(root, 'build/Release/node_kvm.node');

/**
 * Where the addon may be, in order: an override, what node-gyp-build picks
 * (a source build in build/, else the prebuild in prebuilds/ that matches
 * this platform, arch and libc), then the source build again for when
 * node-gyp-build is absent or its pick does not load.
 */
function candidates(): { paths: string[]; notes: string[] } {
  const paths: string[] = [];
  const notes: string[] = [];
  // A sanitizer build (`npm run test:asan`) or another build to test.
  if (process.env.NODE_KVM_ADDON) paths.push(process.env.NODE_KVM_ADDON);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
    paths.push(nodeGypBuild.path(root));
  } catch (e) {
    notes.push((e as Error).message.split('\n')[0] ?? String(e));
  }
  if (!paths.includes(sourceBuild)) paths.push(sourceBuild);
  return { paths, notes };
}

function load(): Binding {
  if (process.platform !== 'linux') {
    throw new Error(`node-kvm needs Linux (KVM is a Linux interface); this is ${process.platform}.`);
  }
  const { paths, notes } = candidates();
  const failures: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) continue;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(p) as Binding;
    } catch (e) {
      if (p === process.env.NODE_KVM_ADDON) throw e; // asked for by name: no silent substitute
      // A prebuild for a newer glibc than this machine's fails here: try the next.
      failures.push(`${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const approve = 'npm install-scripts approve node-kvm && npm rebuild node-kvm';
  if (failures.length) {
    throw new Error(
      `node-kvm: the native addon did not load (${failures.join('; ')}). Build it for this machine: ` +
        `in a checkout run \`npm run build\`; in a project that depends on node-kvm, \`${approve} --build-from-source\`.`,
    );
  }
  throw new Error(
    `node-kvm: the native addon is not built (looked in ${join(root, 'build/Release')} and ` +
      `${join(root, 'prebuilds', `${process.platform}-${process.arch}`)}${notes.length ? `; ${notes.join('; ')}` : ''}). ` +
      'In a checkout run `npm run build`; in a project that depends on node-kvm, ' +
      `allow its build with \`${approve}\`.`,
  );
}

/** @internal */
export const binding: Binding = load();
