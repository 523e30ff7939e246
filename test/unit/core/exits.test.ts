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

    const r = runArea(ExitReason.MMIO);
    r.view.setUint32(off('mmioLen'), 8, true);
    const exit = decodeExit(r.view, r.bytes);
    if (exit.reason !== 'mmio') throw new Error(exit.reason);
    exit.respond(0x0102030405060708n);
    expect(r.view.getBigUint64(off('mmioData'), true)).toBe(0x0102030405060708n);
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
