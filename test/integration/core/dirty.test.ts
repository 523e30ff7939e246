// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { DirtyLog, GuestMemory, MemFlag } from '../../../lib';
import { realModeGuest, runToExit } from '../helpers';
import { DATA, Toucher } from '../../../examples/toucher';

const PAGES_A = [0, 3, 7, 64, 100, 513, 1023];
const at = (pages: number[]) => pages.map((p) => p * 4096 + 0x123);

describe('dirty logging', () => {
  it('reports exactly the pages the guest wrote, and a read resets the log', () => {
    using t = new Toucher({ dataFlags: MemFlag.LOG_DIRTY_PAGES });
    const slot = t.vm.findSlot(DATA)!;
    t.touch(at(PAGES_A));
    const log = slot.getDirtyLog();
    expect(log.pages()).toEqual(PAGES_A);
    expect(log.gfns()).toEqual(PAGES_A.map((p) => BigInt(DATA / 4096 + p)));
    expect(log.isDirty(3)).toBe(true);
    expect(log.isDirty(4)).toBe(false);
    expect(slot.getDirtyLog().pages()).toEqual([]);
    t.touch(at([5, 3]));
    expect(slot.getDirtyLog().pages()).toEqual([3, 5]);
  });

  it('with manual protection, keeps bits until cleared, and cleared bits stay clear until written again', () => {
    using t = new Toucher({ dataFlags: MemFlag.LOG_DIRTY_PAGES, beforeSlots: (vm) => vm.enableManualDirtyLogProtect() });
    expect(t.vm.manualDirtyLogProtect).toBe(true);
    const slot = t.vm.findSlot(DATA)!;
    t.touch(at(PAGES_A));
    const first = slot.getDirtyLog();
    expect(first.pages()).toEqual(PAGES_A);
    expect(slot.getDirtyLog().pages()).toEqual(PAGES_A); // reading does not clear
    slot.clearDirtyLog(first);
    expect(slot.getDirtyLog().pages()).toEqual([]);
    t.touch(at([7, 100]));
    expect(slot.getDirtyLog().pages()).toEqual([7, 100]);
  });

  it('starts all dirty with initiallySet, then clears exactly', () => {
    using t = new Toucher({
      dataSize: 0x40000,
      dataFlags: MemFlag.LOG_DIRTY_PAGES,
      beforeSlots: (vm) => vm.enableManualDirtyLogProtect({ initiallySet: true }),
    });
    const slot = t.vm.findSlot(DATA)!;
    expect(slot.getDirtyLog().pages()).toHaveLength(64);
    slot.clearDirtyLog();
    t.touch(at([1, 2, 63]));
    expect(slot.getDirtyLog().pages()).toEqual([1, 2, 63]);
  });

  it('refuses to read the log of a slot that does not log', () => {
    using t = new Toucher();
    expect(() => t.vm.findSlot(DATA)!.getDirtyLog()).toThrow(/does not log dirty pages/);
  });
});

describe('dirty logs without allocation per read', () => {
  it('reads into a reused bitmap and lists pages into a reused array, the same as the allocating forms', () => {
    // Disposed last: the VM (and its slot) must go first.
    using data = GuestMemory.allocate(0x40000);
    // Writes pages 3, 5 and 8 of the slot at 0x10000.
    using g = realModeGuest([
      0xc6, 0x06, 0x00, 0x30, 0x01, // mov byte [0x3000], 1   (slot page 3: 0x13000 via ds = 0x1000)
      0xc6, 0x06, 0x00, 0x50, 0x01, // mov byte [0x5000], 1
      0xc6, 0x06, 0x00, 0x80, 0x01, // mov byte [0x8000], 1   (page 8)
      0xf4,
    ]);
    const slot = g.vm.addSlot({ guestPhysAddr: 0x10000, memory: data, flags: MemFlag.LOG_DIRTY_PAGES });
    g.vcpu.setSregs({ ds: { base: 0x10000n, selector: 0x1000 } });
    const reused = new Uint8Array(DirtyLog.bytesFor(slot.npages) + 8);
    expect(slot.getDirtyLog(reused).pages()).toEqual([]);
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    const log = slot.getDirtyLog(reused);
    expect(log.bitmap.buffer).toBe(reused.buffer); // the caller's bytes, no copy
    const out = new Uint32Array(2);
    expect(log.pagesInto(out)).toBe(3); // three dirty pages; room for two
    expect([...out]).toEqual([3, 5]);
    const all = new Uint32Array(8);
    expect(log.pagesInto(all)).toBe(3);
    expect([...all.subarray(0, 3)]).toEqual(log.pages());
    expect(log.pages()).toEqual([3, 5, 8]);
    expect(() => slot.getDirtyLog(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});
