// Memory rows: KVM_GET_DIRTY_LOG of a clean 1 GiB slot, and allocating,
// registering, deleting and freeing 4 GiB, against bench/memory.c.
import { check, cProgram, lib, now, usSince } from './harness.mjs';

const { DirtyLog, GuestMemory, Kvm, MemFlag } = lib;

function dirtyLogs(n, reuse) {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const memory = GuestMemory.allocate(2 ** 30);
  try {
    const slot = vm.addSlot({ guestPhysAddr: 0, memory, flags: MemFlag.LOG_DIRTY_PAGES });
    const into = reuse ? new Uint8Array(DirtyLog.bytesFor(slot.npages)) : undefined;
    let log;
    const t0 = now();
    for (let i = 0; i < n; i++) log = slot.getDirtyLog(into);
    const us = usSince(t0);
    check('dirty pages of an untouched slot', log.bitmap.findIndex((b) => b !== 0), -1);
    return us / n;
  } finally {
    vm.close();
    memory.close();
    kvm.close();
  }
}

function slots4g(n) {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  try {
    const t0 = now();
    for (let i = 0; i < n; i++) {
      const memory = GuestMemory.allocate(4 * 2 ** 30);
      vm.addSlot({ slot: 1, guestPhysAddr: 2 ** 32, memory }).delete();
      memory.close();
    }
    const us = usSince(t0);
    check('slots left', vm.slots.length, 0);
    return us / n;
  } finally {
    vm.close();
    kvm.close();
  }
}

export const rows = [
  {
    id: 'dirty',
    name: 'KVM_GET_DIRTY_LOG, clean 1 GiB, reused bitmap',
    goal: 1.2,
    warmup: 500,
    c: cProgram('memory', 'dirty'),
    js: (n) => dirtyLogs(n, true),
  },
  {
    id: 'dirty-fresh',
    name: '  the same into a fresh bitmap each time',
    goal: null,
    warmup: 500,
    c: cProgram('memory', 'dirty'),
    js: (n) => dirtyLogs(n, false),
  },
  {
    id: 'slot4g',
    name: 'allocate + register + delete 4 GiB',
    goal: 1.2,
    warmup: 3,
    min: 3,
    c: cProgram('memory', 'slot4g'),
    js: slots4g,
  },
];
