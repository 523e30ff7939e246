// kvm-test: smoke
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { GuestMemory, hvaToHpa } from '../../../lib';
import { catchError, LIB, realModeGuest, runNode, runToExit } from '../helpers';

// mov ax, 0x1000; mov ds, ax; mov al, [0]; inc al; mov [1], al; hlt  (gpa 0x10000)
const INC_AT_0x10000 = [0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xfe, 0xc0, 0xa2, 0x01, 0x00, 0xf4];

describe('addon-mapped guest memory', () => {
  // V8 runs a full GC at once when its external memory passes a limit, so
  // reserved-but-unread guest memory must not count until JS reads it.
  it('counts as V8 external memory only once JavaScript takes its buffer', () => {
    const external = () => getHeapStatistics().external_memory;
    const before = external();
    using mem = GuestMemory.allocate(1 << 30);
    expect(external() - before).toBeLessThan(1 << 20);
    const beforeBytes = external();
    expect(mem.bytes.length).toBe(1 << 30);
    // A GC may free other external memory meanwhile: the 1 GiB shows anyway.
    expect(external() - beforeBytes).toBeGreaterThan(1 << 29);
  });
  // The buffers' finalizers (which unmap) run only when the event loop
  // turns; close() must not leave a synchronous loop holding every page.
  it('gives the pages back at close(), before the event loop turns', () => {
    const mem = GuestMemory.allocate(16 << 20);
    mem.bytes.fill(0xab);
    // One page in every 16, as /proc/self/pagemap sees them.
    const pages = Array.from({ length: 256 }, (_, i) => mem.address + BigInt(i * 16 * 4096));
    const present = () => pages.filter((hva) => hvaToHpa(hva).present).length;
    expect(present()).toBe(256);
    mem.close();
    expect(present()).toBe(0);
  });

  // Detaching stops JavaScript, not native code that took the address
  // before (a threadpool fs.read() into the buffer): the range must stay
  // mapped, its pages discarded, until the buffers' finalizers run, or such
  // a write would land in whatever is mapped there next.
  it('keeps its address range reserved after close() until the event loop turns', () => {
    const mapped = (addr: bigint) =>
      readFileSync('/proc/self/maps', 'utf8')
        .split('\n')
        .some((l) => l !== '' && BigInt(`0x${l.split('-')[0]}`) <= addr && addr < BigInt(`0x${l.split(' ')[0]!.split('-')[1]}`));
    const mem = GuestMemory.allocate(1 << 20);
    mem.bytes[0] = 1;
    const addr = mem.address;
    mem.close();
    expect(mapped(addr)).toBe(true);
    expect(hvaToHpa(addr).present).toBe(false);
  });

  // ArrayBuffer.prototype.transfer() moves the pages to a buffer close()
  // cannot detach (Node 22 and later).
  it.runIf(typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function')(
    'leaves a buffer moved out with transfer() reading zeros after close(), not freed memory',
    () => {
      const mem = GuestMemory.allocate(1 << 20);
      mem.bytes.fill(0xab);
      const escaped = (mem.bytes.buffer as unknown as { transfer(): ArrayBuffer }).transfer();
      expect(new Uint8Array(escaped)[0]).toBe(0xab);
      mem.close();
      expect(new Uint8Array(escaped).every((b) => b === 0)).toBe(true);
    },
  );
});

describe('caller-owned guest memory', () => {
  it('maps a WebAssembly.Memory with no copies, and survives its growth', () => {
    const wasm = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    using mem = GuestMemory.from(wasm);
    expect(mem.kind).toBe('wasm');
    using g = realModeGuest(INC_AT_0x10000);
    g.vm.addSlot({ guestPhysAddr: 0x10000, memory: mem });
    new Uint8Array(wasm.buffer)[0] = 9;
    wasm.grow(1); // detaches the old buffer; the pages stay where they were
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(new Uint8Array(wasm.buffer)[1]).toBe(10);
  });

  it('maps a SharedArrayBuffer (a shared WebAssembly.Memory\'s) with no copies', () => {
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const sab = shared.buffer as unknown as SharedArrayBuffer;
    using mem = GuestMemory.from(sab);
    expect(mem.kind).toBe('shared');
    using g = realModeGuest(INC_AT_0x10000);
    g.vm.addSlot({ guestPhysAddr: 0x10000, memory: mem });
    new Uint8Array(sab)[0] = 99;
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(new Uint8Array(sab)[1]).toBe(100);
  });

  it('maps a page-aligned view at an offset into its buffer, and runs a guest on it', () => {
    const wasm = new WebAssembly.Memory({ initial: 2 });
    using mem = GuestMemory.from(new Uint8Array(wasm.buffer, 0x10000, 0x10000));
    using g = realModeGuest(INC_AT_0x10000);
    g.vm.addSlot({ guestPhysAddr: 0x10000, memory: mem });
    new Uint8Array(wasm.buffer)[0x10000] = 5;
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(new Uint8Array(wasm.buffer)[0x10001]).toBe(6);
    expect(mem.bytes[1]).toBe(6);
  });

  it('gives a shared WebAssembly.Memory\'s buffer, and EBADF once closed', () => {
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
    const mem = GuestMemory.from(shared);
    expect(mem.kind).toBe('shared');
    expect(mem.buffer).toBe(shared.buffer);
    expect(mem.bytes.length).toBe(0x10000);
    mem.close();
    expect(catchError(() => mem.buffer)).toMatchObject({ code: 'EBADF' });
  });

  it('maps a page-aligned view and rejects an unaligned one with the reason', () => {
    const wasm = new WebAssembly.Memory({ initial: 1 });
    using view = GuestMemory.from(new Uint8Array(wasm.buffer, 0x2000, 0x1000));
    expect(view.size).toBe(0x1000);
    view.bytes[0] = 7;
    expect(new Uint8Array(wasm.buffer)[0x2000]).toBe(7);
    const err = catchError(() => GuestMemory.from(new Uint8Array(wasm.buffer, 16, 0x1000)));
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect((err as Error).message).toMatch(/page boundary/);
    expect(catchError(() => GuestMemory.from(new Uint8Array(wasm.buffer, 0, 100)))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
  });

  it('marks a plain ArrayBuffer untransferable, so a transfer never detaches it', () => {
    const { ab, page, mem } = pageAlignedArrayBuffer();
    using g = realModeGuest(INC_AT_0x10000);
    g.vm.addSlot({ guestPhysAddr: 0x10000, memory: mem });
    // Node 20 copies an untransferable buffer; Node 22 and 24 refuse with DataCloneError.
    let copy: ArrayBuffer | undefined;
    try {
      copy = structuredClone(ab, { transfer: [ab] });
    } catch (e) {
      expect((e as Error).name).toBe('DataCloneError');
    }
    if (copy) expect(copy).not.toBe(ab);
    expect(ab.byteLength).toBe(0x2000);
    page[0] = 1;
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(page[1]).toBe(2);
  });

  // Node 24's markAsUntransferable() gives a buffer a detach key, and
  // Node-API's detach and Node's own teardown of external buffers then
  // abort the process (they detach without the key).
  it('closes memory whose buffers the user marked untransferable, and the process exits cleanly', () => {
    const r = runNode(`
      const { markAsUntransferable } = require('node:worker_threads');
      const k = require(${LIB});
      const m = k.GuestMemory.allocate(1 << 16);
      const whole = m.buffer, window = m.view(0x1000, 0x1000).buffer;
      markAsUntransferable(whole); markAsUntransferable(window);
      m.close();
      const kept = k.GuestMemory.allocate(1 << 16);
      markAsUntransferable(kept.buffer);
      globalThis.alive = [kept, kept.buffer, k.GuestMemory.from(kept.buffer)];
      console.log('closed', whole.byteLength, window.byteLength, kept.buffer.byteLength);
    `);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`closed 0 0 ${1 << 16}`);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
  });

  // Node 24 gives a marked buffer a detach key, and V8's own detach in
  // grow() then aborts the process.
  it("leaves a WebAssembly.Memory's buffer unmarked, so the memory can still grow", () => {
    const r = runNode(`
      const k = require(${LIB});
      const { isMarkedAsUntransferable } = require('node:worker_threads');
      const wasm = new WebAssembly.Memory({ initial: 2, maximum: 4 });
      const whole = k.GuestMemory.from(wasm.buffer);
      const view = k.GuestMemory.from(new Uint8Array(wasm.buffer, 0x10000, 0x10000));
      const marked = isMarkedAsUntransferable ? isMarkedAsUntransferable(wasm.buffer) : false;
      whole.close(); view.close();
      wasm.grow(1);
      console.log(whole.kind, marked, wasm.buffer.byteLength);`);
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe(`arraybuffer false ${3 << 16}`);
  });

  // An own `buffer` getter once named the ArrayBuffer for the bytes and a
  // SharedArrayBuffer for the kind: never checked before a run, never
  // marked, so the bytes could be moved out and freed under KVM.
  it("takes a view's buffer from the view itself, not from a getter the caller put on it", () => {
    const { page } = pageAlignedArrayBuffer();
    const real = page.buffer;
    let reads = 0;
    Object.defineProperty(page, 'buffer', { get: () => (reads++ === 0 ? real : new SharedArrayBuffer(8)) });
    using mem = GuestMemory.from(page);
    expect(mem.kind).toBe('arraybuffer');
    expect(reads).toBe(0);
    const { isMarkedAsUntransferable } = require('node:worker_threads') as { isMarkedAsUntransferable?: (o: object) => boolean };
    if (isMarkedAsUntransferable) expect(isMarkedAsUntransferable(real)).toBe(true);
  });

  it('refuses a detached ArrayBuffer', () => {
    const gone = new ArrayBuffer(0x1000);
    structuredClone(gone, { transfer: [gone] });
    expect(catchError(() => GuestMemory.from(gone))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('allocates 2 MiB-aligned memory when huge pages are asked for', () => {
    using mem = GuestMemory.allocate(4 << 20, { hugePages: true });
    expect(mem.address % (2n << 20n)).toBe(0n);
    mem.bytes[(4 << 20) - 1] = 1;
    expect(mem.bytes[(4 << 20) - 1]).toBe(1);
  });
});

// A plain ArrayBuffer with a page-aligned page inside it: malloc places
// buffers 16-byte aligned, so one of the 256 candidate offsets is aligned
// (with any allocator, ASan's included).
function pageAlignedArrayBuffer(): { ab: ArrayBuffer; page: Uint8Array; mem: GuestMemory } {
  const ab = new ArrayBuffer(0x2000);
  for (let offset = 0; offset < 0x1000; offset += 16) {
    const page = new Uint8Array(ab, offset, 0x1000);
    try {
      return { ab, page, mem: GuestMemory.from(page) };
    } catch {
      // not on a page boundary: try the next offset
    }
  }
  throw new Error('no page-aligned page in an 8 KiB ArrayBuffer');
}
