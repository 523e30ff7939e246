import { describe, expect, it } from 'vitest';
import { decodeExit, ExitReason } from '../../../lib';
import { binding } from '../../../lib/core/binding';

const L = binding.runLayout as Record<string, number>;
const off = (k: string) => {
  const v = L[k];
  if (v === undefined) throw new Error(k);
  return v;
};

function runArea(reason: number) {
  const buf = new ArrayBuffer(3 * 4096);
  const view = new DataView(buf);
  view.setUint32(off('exitReason'), reason, true);
  return { view, bytes: new Uint8Array(buf) };
}

describe('decodeExit', () => {
  it('decodes an out exit with its data in the second page of kvm_run', () => {
    const { view, bytes } = runArea(ExitReason.IO);
    view.setUint8(off('ioDirection'), 1);
    view.setUint8(off('ioSize'), 2);
    view.setUint16(off('ioPort'), 0x3f8, true);
    view.setUint32(off('ioCount'), 1, true);
    view.setBigUint64(off('ioDataOffset'), 4096n, true);
    view.setUint16(4096, 0xbeef, true);
    expect(decodeExit(view, bytes)).toMatchObject({ reason: 'io', direction: 'out', port: 0x3f8, size: 2, count: 1, value: 0xbeef });
  });

  it('writes the answer to an in exit in place, little-endian, per access', () => {
    const { view, bytes } = runArea(ExitReason.IO);
    view.setUint8(off('ioDirection'), 0);
    view.setUint8(off('ioSize'), 2);
    view.setUint32(off('ioCount'), 3, true);
    view.setBigUint64(off('ioDataOffset'), 4096n, true);
    const exit = decodeExit(view, bytes);
    if (exit.reason !== 'io') throw new Error(exit.reason);
    exit.respond([0x0102, 0x0304, 0x0506]);
    expect([...bytes.subarray(4096, 4102)]).toEqual([2, 1, 4, 3, 6, 5]);
    exit.respond(0xffff);
    expect(view.getUint16(4096, true)).toBe(0xffff);
    // Taken off its exit, respond still answers that exit.
    const { respond } = exit;
    respond([7, 8, 9]);
    expect([...bytes.subarray(4096, 4102)]).toEqual([7, 0, 8, 0, 9, 0]);
  });

  it('refuses io data that would lie outside kvm_run', () => {
    const { view, bytes } = runArea(ExitReason.IO);
    view.setUint8(off('ioSize'), 4);
    view.setUint32(off('ioCount'), 1, true);
    view.setBigUint64(off('ioDataOffset'), BigInt(3 * 4096 - 2), true);
    expect(() => decodeExit(view, bytes)).toThrow(/outside kvm_run/);
  });

  it('decodes mmio writes and answers mmio reads', () => {
    const w = runArea(ExitReason.MMIO);
    w.view.setBigUint64(off('mmioPhysAddr'), 0xfee00000n, true);
    w.view.setUint32(off('mmioLen'), 4, true);
    w.view.setUint8(off('mmioIsWrite'), 1);
    w.view.setUint32(off('mmioData'), 0xdeadbeef, true);
    expect(decodeExit(w.view, w.bytes)).toMatchObject({ reason: 'mmio', address: 0xfee00000n, length: 4, isWrite: true, value: 0xdeadbeefn });
    // Every width, little-endian: 1, 2 and 8 bytes (the top bit set in the last).
    for (const [length, value] of [[1, 0xa5n], [2, 0xbeefn], [8, 0xf1e2d3c4b5a69788n]] as const) {
      w.view.setUint32(off('mmioLen'), length, true);
      w.view.setBigUint64(off('mmioData'), value, true);
      expect(decodeExit(w.view, w.bytes)).toMatchObject({ length, value });
    }

    const r = runArea(ExitReason.MMIO);
    r.view.setUint32(off('mmioLen'), 8, true);
    const exit = decodeExit(r.view, r.bytes);
    if (exit.reason !== 'mmio') throw new Error(exit.reason);
    exit.respond(0x0102030405060708n);
    expect(r.view.getBigUint64(off('mmioData'), true)).toBe(0x0102030405060708n);
    const { respond } = exit;
    respond([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.view.getBigUint64(off('mmioData'), true)).toBe(0x0807060504030201n);
  });

  it('decodes the failure exits with their reasons', () => {
    const f = runArea(ExitReason.FAIL_ENTRY);
    f.view.setBigUint64(off('failEntryReason'), 0x80000021n, true);
    f.view.setUint32(off('failEntryCpu'), 3, true);
    expect(decodeExit(f.view, f.bytes)).toEqual({ reason: 'fail_entry', hardwareReason: 0x80000021n, cpu: 3 });

    const i = runArea(ExitReason.INTERNAL_ERROR);
    i.view.setUint32(off('internalSuberror'), 1, true);
    i.view.setUint32(off('internalNdata'), 2, true);
    i.view.setBigUint64(off('internalData'), 7n, true);
    i.view.setBigUint64(off('internalData') + 8, 9n, true);
    expect(decodeExit(i.view, i.bytes)).toEqual({ reason: 'internal_error', suberror: 1, data: [7n, 9n] });

    const s = runArea(ExitReason.SYSTEM_EVENT);
    s.view.setUint32(off('systemEventType'), 2, true);
    expect(decodeExit(s.view, s.bytes)).toMatchObject({ reason: 'system_event', type: 'reset', rawType: 2, data: [] });

    const d = runArea(ExitReason.DEBUG);
    d.view.setUint32(off('debugException'), 1, true);
    d.view.setBigUint64(off('debugPc'), 0x1000n, true);
    expect(decodeExit(d.view, d.bytes)).toMatchObject({ reason: 'debug', exception: 1, pc: 0x1000n });
  });

  it('passes the simple exits and unknown numbers through', () => {
    for (const [n, reason] of [[ExitReason.HLT, 'hlt'], [ExitReason.SHUTDOWN, 'shutdown'], [ExitReason.INTR, 'intr']] as const) {
      const a = runArea(n);
      expect(decodeExit(a.view, a.bytes)).toEqual({ reason });
    }
    const u = runArea(99);
    expect(decodeExit(u.view, u.bytes)).toEqual({ reason: 'unknown', exitReason: 99, hardwareReason: 0n });
  });
});

describe('decodeExit: the exits KVM forwards for answers, and the rest of x86', () => {
  it('decodes a hypercall with its arguments and writes the return value, negative errno included', () => {
    const { view, bytes } = runArea(ExitReason.HYPERCALL);
    view.setBigUint64(off('hypercallNr'), 12n, true);
    [0x2000n, 1n, 0n, 0n, 0n, 0n].forEach((a, i) => view.setBigUint64(off('hypercallArgs') + 8 * i, a, true));
    view.setUint32(off('hypercallFlags'), 1, true);
    const exit = decodeExit(view, bytes);
    expect(exit).toMatchObject({ reason: 'hypercall', nr: 12n, args: [0x2000n, 1n, 0n, 0n, 0n, 0n], flags: 1 });
    if (exit.reason !== 'hypercall') throw new Error(exit.reason);
    exit.respond(-22);
    expect(view.getBigInt64(off('hypercallRet'), true)).toBe(-22n);
    expect(() => exit.respond(2n ** 64n)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });

  it('answers an rdmsr with a value or a #GP, and refuses a wrmsr', () => {
    const rd = runArea(ExitReason.X86_RDMSR);
    rd.view.setUint32(off('msrIndex'), 0x174, true);
    rd.view.setUint32(off('msrReason'), 4, true);
    const exit = decodeExit(rd.view, rd.bytes);
    expect(exit).toMatchObject({ reason: 'rdmsr', index: 0x174, why: 4 });
    if (exit.reason !== 'rdmsr') throw new Error(exit.reason);
    exit.respond(0x1234n);
    expect(rd.view.getBigUint64(off('msrData'), true)).toBe(0x1234n);
    expect(rd.view.getUint8(off('msrError'))).toBe(0);
    exit.respond({ error: true });
    expect(rd.view.getUint8(off('msrError'))).toBe(1);
    const wr = runArea(ExitReason.X86_WRMSR);
    wr.view.setUint32(off('msrIndex'), 0x175, true);
    wr.view.setBigUint64(off('msrData'), 0x55n, true);
    const w = decodeExit(wr.view, wr.bytes);
    expect(w).toMatchObject({ reason: 'wrmsr', index: 0x175, value: 0x55n });
    if (w.reason !== 'wrmsr') throw new Error(w.reason);
    w.fail();
    expect(wr.view.getUint8(off('msrError'))).toBe(1);
  });

  it('decodes ioapic_eoi, tpr_access, notify, memory_fault and the field-less reasons', () => {
    const eoi = runArea(ExitReason.IOAPIC_EOI);
    eoi.view.setUint8(off('eoiVector'), 0x31);
    expect(decodeExit(eoi.view, eoi.bytes)).toEqual({ reason: 'ioapic_eoi', vector: 0x31 });
    const tpr = runArea(ExitReason.TPR_ACCESS);
    tpr.view.setBigUint64(off('tprAccessRip'), 0x1000n, true);
    tpr.view.setUint32(off('tprAccessIsWrite'), 1, true);
    expect(decodeExit(tpr.view, tpr.bytes)).toEqual({ reason: 'tpr_access', rip: 0x1000n, isWrite: true });
    const notify = runArea(ExitReason.NOTIFY);
    notify.view.setUint32(off('notifyFlags'), 1, true);
    expect(decodeExit(notify.view, notify.bytes)).toEqual({ reason: 'notify', flags: 1 });
    const mf = runArea(ExitReason.MEMORY_FAULT);
    mf.view.setBigUint64(off('exitUnion') + 8, 0x5000n, true);
    mf.view.setBigUint64(off('exitUnion') + 16, 0x1000n, true);
    expect(decodeExit(mf.view, mf.bytes)).toEqual({ reason: 'memory_fault', flags: 0n, gpa: 0x5000n, size: 0x1000n });
    const simple: [number, string][] = [
      [ExitReason.IRQ_WINDOW_OPEN, 'irq_window_open'], [ExitReason.SET_TPR, 'set_tpr'], [ExitReason.NMI, 'nmi'],
      [ExitReason.DIRTY_RING_FULL, 'dirty_ring_full'], [ExitReason.AP_RESET_HOLD, 'ap_reset_hold'],
      [ExitReason.X86_BUS_LOCK, 'bus_lock'], [ExitReason.HYPERV, 'hyperv'], [ExitReason.XEN, 'xen'],
    ];
    for (const [n, name] of simple) {
      const a = runArea(n);
      expect(decodeExit(a.view, a.bytes)).toEqual({ reason: name });
    }
    const unknown = runArea(999);
    expect(decodeExit(unknown.view, unknown.bytes)).toMatchObject({ reason: 'unknown', exitReason: 999 });
  });
});
