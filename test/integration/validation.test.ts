// kvm-test: smoke
// Every public function either works or throws one of the project's error
// kinds (KvmError, a TypeError/RangeError with an ERR_* code, GuestError,
// ElfError), for arbitrary arguments; and no argument is silently coerced.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lib from '../../lib';
import { ElfError, GuestError, GuestMemory, Kvm, KvmError, type MemorySlot, type Vcpu, type Vm } from '../../lib';
import { catchError } from './helpers';

const RUNS = 120;

function typed(e: unknown): boolean {
  if (e instanceof KvmError) return typeof e.code === 'string' && typeof e.errno === 'number' && typeof e.syscall === 'string';
  if (e instanceof TypeError || e instanceof RangeError) {
    const code = (e as unknown as { code?: unknown }).code;
    return typeof code === 'string' && code.startsWith('ERR_');
  }
  return e instanceof GuestError || e instanceof ElfError;
}

/** Calls f; passes when it returns or throws a typed error. */
function succeedsOrTyped(f: () => unknown): void {
  try {
    const r = f();
    if (r instanceof Promise) throw new Error('use the async form');
  } catch (e) {
    if (!typed(e)) throw new Error(`untyped error: ${(e as Error)?.stack ?? String(e)}`);
  }
}

// Hostile values: fc.anything() plus the edges that used to be coerced.
const edge = fc.constantFrom<unknown>(
  NaN, -0, Infinity, -Infinity, 2 ** 32, 2 ** 32 + 1, 1.5, -1, 2 ** 53, 0x10000, -1n, 2n ** 64n, 2n ** 64n - 1n, 0x1000n,
  '/dev/kvm\0junk', '', 'x', null, undefined, { rpi: 1 }, { slot: NaN }, [], [1, 2, 3, 4, 5], true, new Uint8Array(3),
);
const hostile = fc.oneof(fc.anything({ withBigInt: true, withNullPrototype: true, withTypedArray: true, maxDepth: 2 }), edge, fc.bigInt(), fc.double(), fc.integer());
const u64ish = fc.oneof(fc.bigInt({ min: -1n, max: 2n ** 64n }), fc.integer({ min: -1, max: 2 ** 40 }), edge);
const small = fc.oneof(fc.integer({ min: -2, max: 0x20000 }), edge);
const optionsOf = (spec: Record<string, fc.Arbitrary<unknown>>) => fc.oneof(fc.record(spec, { requiredKeys: [] }), hostile);

let kvm: Kvm;
let vm: Vm;
let memory: GuestMemory;
let slot: MemorySlot;
let vcpu: Vcpu;
const eventfd = new lib.EventFd(); // for the eventfd surface; an idle EventFd keeps nothing alive

beforeAll(() => {
  kvm = Kvm.open();
  vm = kvm.createVm();
  memory = GuestMemory.allocate(0x10000);
  memory.bytes.fill(0xf4); // hlt everywhere: any run ends at once
  slot = vm.addSlot({ guestPhysAddr: 0, memory });
  vcpu = vm.createVcpu();
  lib.setupMode(vcpu, { mode: 'real', entry: 0x1000 });
});

afterAll(() => {
  vm.close();
  memory.close();
  kvm.close();
});

// [name, arguments arbitrary, call]
const surface: [string, fc.Arbitrary<unknown[]>, (args: unknown[]) => unknown][] = [
  ['Kvm.open', fc.tuple(fc.oneof(fc.constantFrom('/dev/kvm', '/dev/null', '/nonexistent', '/dev/kvm\0junk'), hostile)), (a) => (Kvm.open as (...x: unknown[]) => Kvm)(...a).close()],
  ['kvm.checkExtension', fc.tuple(fc.oneof(small, hostile)), (a) => (kvm.checkExtension as (...x: unknown[]) => number)(...a)],
  ['kvm.createVm', fc.tuple(optionsOf({ type: fc.oneof(fc.constant(0), small), tssAddr: fc.oneof(fc.constant(null), u64ish) })), (a) => (kvm.createVm as (...x: unknown[]) => Vm)(...a).close()],
  ['vm.checkExtension', fc.tuple(hostile), (a) => (vm.checkExtension as (...x: unknown[]) => number)(...a)],
  ['vm.setTssAddr', fc.tuple(u64ish), (a) => (vm.setTssAddr as (...x: unknown[]) => void)(...a)],
  ['vm.setIdentityMapAddr', fc.tuple(u64ish), (a) => (vm.setIdentityMapAddr as (...x: unknown[]) => void)(...a)],
  ['vm.addSlot', fc.tuple(optionsOf({ guestPhysAddr: u64ish, memory: fc.constant(null).map(() => memory), offset: small, size: small, flags: small, slot: small })), (a) => {
    const s = (vm.addSlot as (...x: unknown[]) => MemorySlot)(...a);
    s.delete();
  }],
  ['vm.findSlot', fc.tuple(u64ish), (a) => (vm.findSlot as (...x: unknown[]) => unknown)(...a)],
  ['vm.memoryAt', fc.tuple(u64ish, small), (a) => (vm.memoryAt as (...x: unknown[]) => unknown)(...a)],
  ['vm.gpaToHva', fc.tuple(u64ish), (a) => (vm.gpaToHva as (...x: unknown[]) => unknown)(...a)],
  ['resolveGpa', fc.tuple(fc.oneof(fc.constant(undefined), hostile), u64ish), (a) => (lib.resolveGpa as (...x: unknown[]) => unknown)(a[0] === undefined ? vm : a[0], a[1])],
  ['vm.enableCap', fc.tuple(hostile, fc.oneof(fc.array(u64ish, { maxLength: 5 }), hostile)), (a) => (vm.enableCap as (...x: unknown[]) => unknown)(...a)],
  ['vm.enableManualDirtyLogProtect', fc.tuple(optionsOf({ initiallySet: hostile })), (a) => (vm.enableManualDirtyLogProtect as (...x: unknown[]) => unknown)(...a)],
  ['vm.createVcpu', fc.tuple(fc.oneof(small, fc.constantFrom(4095, 4096, 2 ** 32 + 1))), (a) => (vm.createVcpu as (...x: unknown[]) => Vcpu)(...a).close()],
  ['vcpu.setRegs', fc.tuple(optionsOf({ rip: u64ish, rax: u64ish, rflags: u64ish, rpi: hostile })), (a) => (vcpu.setRegs as (...x: unknown[]) => void)(...a)],
  ['vcpu.setSregs', fc.tuple(optionsOf({
    cs: optionsOf({ base: u64ish, limit: small, selector: small, type: small, dpl: small, present: small, l: small, g: small }),
    gdt: optionsOf({ base: u64ish, limit: small }),
    cr0: u64ish, interruptBitmap: fc.oneof(fc.array(u64ish, { maxLength: 5 }), hostile),
  })), (a) => (vcpu.setSregs as (...x: unknown[]) => void)(...a)],
  ['vcpu.setCpuid', fc.tuple(fc.oneof(fc.array(optionsOf({ function: small, index: small, flags: small, eax: small, ebx: small, ecx: small, edx: small }), { maxLength: 3 }), hostile)), (a) => (vcpu.setCpuid as (...x: unknown[]) => void)(...a)],
  ['vcpu.translate', fc.tuple(u64ish), (a) => (vcpu.translate as (...x: unknown[]) => unknown)(...a)],
  ['vcpu.setGuestDebug', fc.tuple(fc.oneof(fc.constant(null), optionsOf({ singleStep: hostile, breakpoints: fc.oneof(fc.array(u64ish, { maxLength: 5 }), hostile), softwareBreakpoints: hostile }))), (a) => {
    (vcpu.setGuestDebug as (...x: unknown[]) => void)(...a);
    vcpu.setGuestDebug(null);
  }],
  ['runUntilHalt', fc.tuple(optionsOf({ io: hostile, mmio: hostile, debug: hostile })), (a) => {
    vcpu.setRegs({ rip: 0x1000 });
    (lib.runUntilHalt as (...x: unknown[]) => unknown)(vcpu, ...a, { timeoutMs: 1000 });
  }],
  ['GuestMemory.allocate', fc.tuple(fc.oneof(small, fc.constantFrom(0x1000, 0x200000, 4097)), optionsOf({ hugePages: hostile })), (a) => (GuestMemory.allocate as (...x: unknown[]) => GuestMemory)(...a).close()],
  ['GuestMemory.from', fc.tuple(hostile), (a) => (GuestMemory.from as (...x: unknown[]) => GuestMemory)(...a).close()],
  ['slot.contains', fc.tuple(u64ish), (a) => (slot.contains as (...x: unknown[]) => unknown)(...a)],
  ['slot.move', fc.tuple(u64ish), (a) => {
    (slot.move as (...x: unknown[]) => void)(...a);
    slot.move(0);
  }],
  ['slot.setFlags', fc.tuple(small), (a) => {
    (slot.setFlags as (...x: unknown[]) => void)(...a);
    slot.setFlags(0);
  }],
  ['vm.createGuestMemfd', fc.tuple(fc.oneof(small, fc.constantFrom(0x1000, 0x10000, 4097))), (a) => (vm.createGuestMemfd as (...x: unknown[]) => { close(): void })(...a).close()],
  ['slot.view', fc.tuple(small, small), (a) => (slot.view as (...x: unknown[]) => unknown)(...a)],
  ['slot.hvaOf', fc.tuple(u64ish), (a) => (slot.hvaOf as (...x: unknown[]) => unknown)(...a)],
  ['memory.view', fc.tuple(small, small), (a) => (memory.view as (...x: unknown[]) => unknown)(...a)],
  ['kickVcpu', fc.tuple(u64ish), (a) => (lib.kickVcpu as (...x: unknown[]) => unknown)(...a)],
  ['setKickSignal', fc.tuple(fc.oneof(small, fc.constant(lib.kickSignal()))), (a) => (lib.setKickSignal as (...x: unknown[]) => unknown)(...a)],
  ['handleExit', fc.tuple(fc.oneof(fc.constantFrom({ reason: 'hlt' }, { reason: 'io' }, { reason: 'shutdown' }), hostile), optionsOf({ io: hostile, mmio: hostile })), (a) => (lib.handleExit as (...x: unknown[]) => unknown)(...a)],
  ['realModeGuest', fc.tuple(fc.oneof(fc.array(fc.integer({ min: -1, max: 256 }), { maxLength: 4 }), hostile), optionsOf({ memorySize: small, kvm: hostile })), (a) => (lib.realModeGuest as (...x: unknown[]) => { close(): void })(...a).close()],
  ['slot.clearDirtyLog', fc.tuple(hostile), (a) => (slot.clearDirtyLog as (...x: unknown[]) => void)(...a)],
  ['DirtyLog.bytesFor', fc.tuple(hostile), (a) => (lib.DirtyLog.bytesFor as (...x: unknown[]) => unknown)(...a)],
  ['encodeDescriptor', fc.tuple(optionsOf({ base: u64ish, limit: small, type: small, s: small, dpl: small, present: small, avl: small, l: small, db: small, g: small })), (a) => (lib.encodeDescriptor as (...x: unknown[]) => unknown)(...a)],
  ['decodeDescriptor', fc.tuple(u64ish), (a) => (lib.decodeDescriptor as (...x: unknown[]) => unknown)(...a)],
  ['segmentFor', fc.tuple(small, hostile), (a) => (lib.segmentFor as (...x: unknown[]) => unknown)(...a)],
  ['PageTableBuilder', fc.tuple(fc.oneof(fc.constantFrom('long', 'pae', 'paging32'), hostile), fc.oneof(fc.constant((_: bigint, n: number) => new Uint8Array(n)), hostile), u64ish, optionsOf({ limit: u64ish, avoid: hostile })), (a) => new (lib.PageTableBuilder as unknown as new (...x: unknown[]) => unknown)(...a)],
  ['PageTableBuilder.map', fc.tuple(optionsOf({ virt: u64ish, phys: u64ish, size: fc.oneof(fc.constantFrom(0, 0x1000, 0x200000), hostile), pageSize: hostile, writable: hostile, user: hostile })), (a) => {
    let pages = 0;
    const b = new lib.PageTableBuilder('long', (_g, n) => {
      if (++pages > 64) throw new RangeError('budget') as never;
      return new Uint8Array(n);
    }, 0x1000);
    try {
      (b.map as (...x: unknown[]) => unknown)(...a);
    } catch (e) {
      if ((e as Error).message !== 'budget') throw e;
    }
  }],
  ['walkPageTables', fc.tuple(hostile, fc.constant((_: bigint, n: number) => new Uint8Array(n)), u64ish, u64ish), (a) => (lib.walkPageTables as (...x: unknown[]) => unknown)(...a)],
  ['setupMode', fc.tuple(fc.oneof(fc.constant(undefined), hostile), optionsOf({ mode: fc.oneof(fc.constantFrom('real', 'protected', 'long'), hostile), entry: u64ish, stack: u64ish, layout: hostile, avoid: hostile })), (a) => {
    (lib.setupMode as (...x: unknown[]) => unknown)(a[0] === undefined ? vcpu : a[0], a[1]);
  }],
  ['modeOf', fc.tuple(optionsOf({ cr0: u64ish, cr4: u64ish, efer: u64ish })), (a) => (lib.modeOf as (...x: unknown[]) => unknown)(...a)],
  ['loadFlat', fc.tuple(fc.oneof(fc.constant(undefined), hostile), hostile, u64ish), (a) => (lib.loadFlat as (...x: unknown[]) => unknown)(a[0] ?? vm, a[1], a[2])],
  ['loadElf', fc.tuple(fc.oneof(fc.uint8Array({ maxLength: 80 }), hostile)), (a) => (lib.loadElf as (...x: unknown[]) => unknown)(vm, a[0])],
  ['guestError', fc.tuple(hostile, hostile), (a) => (lib.guestError as (...x: unknown[]) => unknown)(vcpu, a[0], a[1])],
  ['disassemble', fc.tuple(fc.oneof(fc.uint8Array({ maxLength: 16 }), hostile), u64ish, hostile, hostile), (a) => (lib.disassemble as (...x: unknown[]) => unknown)(...a)],
  ['decodeExit', fc.tuple(hostile, hostile), (a) => (lib.decodeExit as (...x: unknown[]) => unknown)(...a)],
  ['hvaToHpa', fc.tuple(u64ish), (a) => (lib.hvaToHpa as (...x: unknown[]) => unknown)(...a)],
  ['eptIndex', fc.tuple(u64ish), (a) => (lib.eptIndex as (...x: unknown[]) => unknown)(...a)],
  ['predictTree', fc.tuple(fc.oneof(fc.array(u64ish, { maxLength: 4 }), hostile), hostile), (a) => (lib.predictTree as (...x: unknown[]) => unknown)(...a)],
  ['newMmuPage/indexIn/childAt', fc.tuple(small, u64ish, small), (a) => {
    (lib.indexIn as (...x: unknown[]) => unknown)(a[0], a[1]);
    (lib.childAt as (...x: unknown[]) => unknown)((lib.newMmuPage as (...x: unknown[]) => unknown)(a[0], a[1]), a[2]);
  }],
  ['tables/leaves/render', fc.tuple(hostile, hostile), (a) => {
    succeedsOrTyped(() => (lib.tables as (...x: unknown[]) => unknown)(a[0]));
    succeedsOrTyped(() => (lib.leaves as (...x: unknown[]) => unknown)(a[0]));
    succeedsOrTyped(() => (lib.renderMmuText as (...x: unknown[]) => unknown)(lib.predictTree([1n]), a[1]));
    (lib.renderMmuSvg as (...x: unknown[]) => unknown)(a[0], a[1]);
  }],
  ['describeKvm', fc.tuple(hostile), (a) => (lib.describeKvm as (...x: unknown[]) => unknown)(...a)],
  ['stats.get', fc.tuple(hostile), (a) => {
    using stats = vm.openStats();
    (stats.get as (...x: unknown[]) => unknown)(...a);
  }],
  // eventfds and rings
  ['eventFd.write', fc.tuple(fc.oneof(u64ish, hostile)), (a) => {
    using e = new lib.EventFd();
    (e.write as (...x: unknown[]) => unknown)(...a);
  }],
  ['vm.ioeventfd', fc.tuple(optionsOf({ address: u64ish, length: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 8), small), datamatch: u64ish, pio: fc.oneof(fc.boolean(), hostile), eventfd: fc.oneof(fc.constant(null).map(() => eventfd), hostile) })), (a) => {
    ((vm.ioeventfd as (...x: unknown[]) => { remove(): void })(...a)).remove();
  }],
  ['vm.irqfd', fc.tuple(optionsOf({ gsi: small, eventfd: fc.oneof(fc.constant(null).map(() => eventfd), hostile), resample: hostile })), (a) => {
    ((vm.irqfd as (...x: unknown[]) => { remove(): void })(...a)).remove();
  }],
  ['vm.addCoalescedZone', fc.tuple(optionsOf({ address: u64ish, size: small, pio: fc.oneof(fc.boolean(), hostile) })), (a) => {
    ((vm.addCoalescedZone as (...x: unknown[]) => { remove(): void })(...a)).remove();
  }],
  ['vm.enableDirtyRing', fc.tuple(fc.oneof(small, fc.constantFrom(4096, 0x10000, 2 ** 20, 2 ** 21))), (a) => (vm.enableDirtyRing as (...x: unknown[]) => unknown)(...a)],
  ['vcpu.drainCoalesced', fc.tuple(fc.oneof(fc.constant(undefined), fc.constant(() => {}), hostile)), (a) => (vcpu.drainCoalesced as (...x: unknown[]) => unknown)(...a)],
  ['vcpu.harvestDirtyRingInto', fc.tuple(fc.oneof(fc.constant(new Uint32Array(2)), hostile), fc.oneof(fc.constant(new BigUint64Array(2)), hostile)), (a) => (vcpu.harvestDirtyRingInto as (...x: unknown[]) => unknown)(...a)],
];

describe('every public function validates its arguments', () => {
  for (const [name, args, call] of surface) {
    it(`${name}: succeeds or throws a typed error`, () => {
      fc.assert(fc.property(args, (a) => succeedsOrTyped(() => call(a))), { numRuns: RUNS });
    });
  }

  it('refuses what used to be coerced silently', () => {
    const code = (f: () => unknown) => (catchError(f) as { code?: string }).code;
    const any = <T>(v: unknown) => v as T;
    expect(code(() => vm.createVcpu(2 ** 32 + 1))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vm.createVcpu(1.5))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vm.addSlot({ guestPhysAddr: 0x100000, memory, slot: NaN }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vm.addSlot({ guestPhysAddr: 0x100000, memory, flags: NaN }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vm.addSlot({ guestPhysAddr: 0x100000, memory, slot: 32764 }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => kvm.createVm({ type: 2 ** 32 }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vcpu.setSregs({ cs: { selector: 0x10000 } }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vcpu.setSregs({ gdt: { limit: 0x10000 } }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vcpu.setSregs({ cs: { dpl: 4 } }))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vm.memoryAt(0, -1))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => vm.memoryAt(0, any(undefined)))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => Kvm.open(any(42)))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => Kvm.open('/dev/kvm\0junk'))).toBe('ERR_INVALID_ARG_VALUE');
    const rpi = catchError(() => vcpu.setRegs(any({ rpi: 1 })));
    expect(rpi).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect((rpi as Error).message).toMatch(/regs\.rpi/);
    const rip = catchError(() => vcpu.setRegs({ rip: -1 }));
    expect(rip).toBeInstanceOf(RangeError);
    expect(rip).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect((rip as Error).message).toMatch(/"regs\.rip"/);
    expect(code(() => vcpu.setGuestDebug({ breakpoints: [1, 2, 3, 4, 5] }))).toBe('ERR_OUT_OF_RANGE');
  });

  it('checks alignment and overlap before the ioctl, naming the field and the slot', () => {
    const unaligned = catchError(() => vm.addSlot({ guestPhysAddr: 0x100800, memory }));
    expect(unaligned).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect((unaligned as Error).message).toMatch(/options\.guestPhysAddr/);
    const overlap = catchError(() => vm.addSlot({ guestPhysAddr: 0x8000, memory }));
    expect(overlap).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect((overlap as Error).message).toMatch(/overlaps slot 0/);
    expect(memory.slotCount).toBe(1);
  });
});
