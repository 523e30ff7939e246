import { describe, expect, it } from 'vitest';
import { Cap, ExitReason, GuestMemory, Kvm, KvmError, MemFlag, probeKvm, KVM_API_VERSION } from '../../../lib';
import { binding } from '../../../lib/core/binding';

function thrown(f: () => unknown): Record<string, unknown> {
  try {
    f();
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('expected an error');
}

describe('constants', () => {
  it('match the kernel header the addon was built with', () => {
    const c = binding.constants;
    expect(KVM_API_VERSION).toBe(c.KVM_API_VERSION);
    for (const [name, value] of Object.entries(Cap)) expect([name, value]).toEqual([name, c[`KVM_CAP_${name}`]]);
    for (const [name, value] of Object.entries(ExitReason)) expect([name, value]).toEqual([name, c[`KVM_EXIT_${name}`]]);
    for (const [name, value] of Object.entries(MemFlag)) expect([name, value]).toEqual([name, c[`KVM_MEM_${name}`]]);
  });
});

describe('KvmError', () => {
  it('is shaped like a Node system error, with a hint', () => {
    const e = new KvmError(17, 'KVM_SET_USER_MEMORY_REGION', 'slot 1');
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ name: 'KvmError', code: 'EEXIST', errno: 17, syscall: 'KVM_SET_USER_MEMORY_REGION' });
    expect(e.message).toBe(
      'KVM_SET_USER_MEMORY_REGION failed with EEXIST (slot 1): the guest-physical range overlaps another slot; delete or move that slot first',
    );
  });

  it('tells a user without permission about the kvm group', () => {
    expect(new KvmError(13, 'open', '/dev/kvm').message).toMatch(/kvm group/);
  });

  it('comes out of the addon for a failed open, with errno and syscall', () => {
    const e = thrown(() => Kvm.open('/nonexistent/kvm'));
    expect(e).toBeInstanceOf(KvmError);
    expect(e).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', detail: '/nonexistent/kvm' });
  });

  it('comes out of the addon for an ioctl on a non-KVM fd', () => {
    const e = thrown(() => Kvm.open('/dev/null'));
    expect(e).toMatchObject({ code: 'ENOTTY', syscall: 'KVM_GET_API_VERSION' });
  });
});

describe('probeKvm', () => {
  it('reports an unusable device with the reason instead of throwing', () => {
    const p = probeKvm('/nonexistent/kvm');
    expect(p).toMatchObject({ usable: false, code: 'ENOENT' });
    expect(p.reason).toMatch(/ENOENT/);
  });
});

describe('GuestMemory', () => {
  it('allocates zeroed, page-aligned memory that JavaScript reads and writes in place', () => {
    using m = GuestMemory.allocate(3 * 4096);
    expect(m.size).toBe(3 * 4096);
    expect(m.kind).toBe('mapped');
    expect(m.address % 4096n).toBe(0n);
    expect(m.bytes.every((b) => b === 0)).toBe(true);
    m.bytes[5] = 7;
    expect(new Uint8Array(m.buffer)[5]).toBe(7);
  });

  it('asks hugetlb memory for whole 2 MiB pages', () => {
    expect(thrown(() => GuestMemory.allocate(0x1000, { hugePages: 'hugetlb' }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });

  it('rejects sizes that are not whole pages', () => {
    for (const size of [0, 100, 4097, -4096, 1.5, NaN]) {
      const e = thrown(() => GuestMemory.allocate(size));
      expect(e).toBeInstanceOf(RangeError);
      expect(e).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    }
    expect(thrown(() => GuestMemory.allocate('4096' as unknown as number))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('detaches its buffer on close, and close is idempotent', () => {
    const m = GuestMemory.allocate(4096);
    const buf = m.buffer;
    m.close();
    m.close();
    expect(buf.byteLength).toBe(0);
    expect(m.closed).toBe(true);
    expect(thrown(() => m.bytes)).toMatchObject({ code: 'EBADF' });
  });

  it('keeps the mapping while a buffer taken from it is still reachable', () => {
    const buf = (() => GuestMemory.allocate(4096).buffer)();
    (globalThis as { gc?: () => void }).gc?.();
    new Uint8Array(buf)[4095] = 1;
    expect(new Uint8Array(buf)[4095]).toBe(1);
  });

  it('rejects buffers that are not page-aligned, saying why', () => {
    const wasm = new WebAssembly.Memory({ initial: 1 });
    const e = thrown(() => GuestMemory.from(new Uint8Array(wasm.buffer, 8, 4096)));
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(String(e.message)).toMatch(/page boundary/);
    expect(thrown(() => GuestMemory.from({} as ArrayBuffer))).toBeInstanceOf(TypeError);
    expect(thrown(() => GuestMemory.from({} as ArrayBuffer))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });
});
