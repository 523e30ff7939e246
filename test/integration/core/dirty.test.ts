// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { MemFlag } from '../../../lib';
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
