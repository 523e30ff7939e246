// kvm-test: smoke
// KVM_SET_USER_MEMORY_REGION2 and guest_memfd, where the kernel has them.
import { describe, expect, it } from 'vitest';
import { Cap, GuestMemory, Kvm, MemFlag, setupMode } from '../../../lib';
import { catchError, realModeGuest, runToExit } from '../helpers';

describe('guest_memfd slots (KVM_SET_USER_MEMORY_REGION2)', () => {
  it('binds a slot to a guest_memfd and runs a guest in it, or refuses with the kernel\'s error where it has none', () => {
    // mov byte [0x3000], 0x5a; hlt   (in a second slot at 0x10000: code at 0x1000 of it)
    using g = realModeGuest([0xc6, 0x06, 0x00, 0x30, 0x5a, 0xf4]);
    const have = g.vm.checkExtension(Cap.USER_MEMORY2) > 0 && g.vm.checkExtension(Cap.GUEST_MEMFD) > 0;
    if (!have) {
      // 6.1 (the sandbox) predates both ioctls.
      expect(catchError(() => g.vm.createGuestMemfd(0x10000))).toMatchObject({ syscall: 'KVM_CREATE_GUEST_MEMFD' });
      return;
    }
    using memfd = g.vm.createGuestMemfd(0x20000);
    expect(memfd.fd).toBeGreaterThanOrEqual(0);
    // Move the guest's RAM to a guest_memfd-bound slot at the same place.
    const memory = g.memory;
    g.vm.slots[0]!.delete();
    const slot = g.vm.addSlot({ guestPhysAddr: 0, memory, guestMemfd: { memfd, offset: 0x10000 } });
    expect(slot.flags & MemFlag.GUEST_MEMFD).toBe(MemFlag.GUEST_MEMFD);
    // A VM without private memory runs on the slot's ordinary memory.
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(memory.bytes[0x3000]).toBe(0x5a);
    expect(catchError(() => g.vm.addSlot({ guestPhysAddr: 0x100000, memory, guestMemfd: { memfd, offset: 0x20000 } }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    memfd.close();
    expect(catchError(() => g.vm.addSlot({ guestPhysAddr: 0x100000, memory, guestMemfd: { memfd } }))).toMatchObject({ code: 'EBADF' });
  });
});

describe('the dirty ring filling up', () => {
  it('exits as dirty_ring_full when the guest dirties more pages than the ring holds, and goes on once harvested and reset', () => {
    // mov cx, 230; mov ax, 0x1000; next: mov es, ax; mov byte [es:0], 1; add ax, 0x100; dec cx; jnz next; hlt
    // 230 pages from 0x10000: more than a one-page ring (256 entries, less
    // KVM's reserve) takes before it asks to be harvested.
    const code = [0xb9, 0xe6, 0x00, 0xb8, 0x00, 0x10, 0x8e, 0xc0, 0x26, 0xc6, 0x06, 0x00, 0x00, 0x01, 0x05, 0x00, 0x01, 0x49, 0x75, 0xf2, 0xf4];
    using kvm = Kvm.open();
    using memory = GuestMemory.allocate(0x200000);
    const vm = kvm.createVm();
    try {
      if (vm.checkExtension(Cap.DIRTY_LOG_RING) === 0) expect.fail('KVM_CAP_DIRTY_LOG_RING is 0 on this KVM');
      vm.enableDirtyRing(4096);
      memory.bytes.set(code, 0x1000);
      vm.addSlot({ guestPhysAddr: 0, memory, flags: MemFlag.LOG_DIRTY_PAGES });
      const vcpu = vm.createVcpu();
      setupMode(vcpu, { mode: 'real', entry: 0x1000 });
      const seen = new Set<bigint>();
      let full = 0;
      for (;;) {
        const exit = runToExit(vcpu);
        if (exit.reason === 'hlt') break;
        expect(exit.reason).toBe('dirty_ring_full');
        full++;
        for (const d of vcpu.harvestDirtyRing()) seen.add(d.offset);
        vm.resetDirtyRings();
      }
      if (full === 0) {
        // PVM emulates this CPL0 loop without a look at KVM's requests and
        // notices the soft-full ring only at the next entry; SVM exits in the loop.
        expect(runToExit(vcpu).reason).toBe('dirty_ring_full');
        full++;
      }
      for (const d of vcpu.harvestDirtyRing()) seen.add(d.offset);
      expect(full).toBeGreaterThan(0);
      // Every page the guest wrote was reported (offsets are page numbers in the slot).
      for (let p = 0x10n; p < 0x10n + 230n; p++) expect(seen.has(p)).toBe(true);
      expect(memory.bytes[0x10000 + 229 * 0x1000]).toBe(1);
    } finally {
      vm.close();
    }
  });
});
