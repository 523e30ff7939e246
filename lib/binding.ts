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
  ): bigint;
  createVcpu(id: number): NativeVcpu;
  slotIds(): number[];
  getDirtyLog(slot: number, bitmap: Uint8Array): void;
  clearDirtyLog(slot: number, firstPage: bigint | number, numPages: number, bitmap: Uint8Array): void;
  enableCap(cap: number, args: (bigint | number)[]): number;
  getStatsFd(): number;
  close(): void;
}

/** @internal */
export interface NativeVcpu {
  readonly fd: number;
  readonly id: number;
  readonly running: boolean;
  readonly kickHandle: bigint;
  readonly runBuffer: ArrayBuffer;
  run(timeoutMs?: number): number;
  runAsync(): Promise<number>;
  kick(): boolean;
  getRegs(): import('./regs').Regs;
  setRegs(regs: Partial<import('./regs').RegsInput>): void;
  getSregs(): import('./regs').Sregs;
  setSregs(sregs: import('./regs').SregsInput): void;
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
  runLayout: Record<string, number>;
  constants: Record<string, number>;
}

const root = join(__dirname, '..');
const candidates = [
  // A sanitizer build (`npm run test:asan`) or another build to test.
  ...(process.env.NODE_KVM_ADDON ? [process.env.NODE_KVM_ADDON] : []),
  join(root, 'build/Release/node_kvm.node'),
  join(root, `prebuilds/${process.platform}-${process.arch}/node_kvm.node`),
];

function load(): Binding {
  if (process.platform !== 'linux') {
    throw new Error(`node-kvm needs Linux (KVM is a Linux interface); this is ${process.platform}.`);
  }
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      'node-kvm: the native addon is not built (looked for ' +
        candidates.join(' and ') +
        '). In a checkout run `npm run build`; in a project that depends on node-kvm, ' +
        'allow its build with `npm install-scripts approve node-kvm && npm rebuild node-kvm`.',
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(found) as Binding;
}

/** @internal */
export const binding: Binding = load();
