// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { GuestMemory, Kvm, KvmError, MemFlag } from '../../../lib';
import { catchError } from '../helpers';

describe('VMs and vCPUs', () => {
  it('creates a VM with vCPUs and refuses a duplicate vCPU id with EEXIST', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    expect(vm.fd).toBeGreaterThan(2);
    const a = vm.createVcpu();
    const b = vm.createVcpu();
    expect([a.id, b.id]).toEqual([0, 1]);
    expect(a.fd).not.toBe(b.fd);
    const err = catchError(() => vm.createVcpu(0));
    expect(err).toBeInstanceOf(KvmError);
    expect(err).toMatchObject({ code: 'EEXIST', syscall: 'KVM_CREATE_VCPU' });
  });

  it('starts a vCPU at the x86 reset vector f000:fff0', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    const vcpu = vm.createVcpu();
    const sregs = vcpu.getSregs();
    expect(sregs.cs.selector).toBe(0xf000);
    expect(sregs.cs.base).toBe(0xffff0000n);
    expect(vcpu.getRegs().rip).toBe(0xfff0n);
    expect(sregs.cr0 & 1n).toBe(0n); // real mode
  });

  it('round-trips registers through KVM_SET_REGS and KVM_SET_SREGS, partially', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    const vcpu = vm.createVcpu();
    vcpu.setRegs({ rax: 0x1122334455667788n, r15: 42, rip: 0x1000 });
    const regs = vcpu.getRegs();
    expect(regs.rax).toBe(0x1122334455667788n);
    expect(regs.r15).toBe(42n);
    expect(regs.rip).toBe(0x1000n);
    vcpu.setSregs({ ds: { base: 0x20000n, selector: 0x2000 } });
    const s = vcpu.getSregs();
    expect(s.ds).toMatchObject({ base: 0x20000n, selector: 0x2000 });
    expect(s.cs.selector).toBe(0xf000); // untouched
  });
});

describe('memory slots', () => {
  it('adds, moves, re-flags and deletes slots, mirroring kvm_memory_slot', () => {
    using kvm = Kvm.open();
    using memory = GuestMemory.allocate(0x4000); // before the VM: disposed after it
    using vm = kvm.createVm();
    const slot = vm.addSlot({ guestPhysAddr: 0x100000, memory });
    expect(slot).toMatchObject({ id: 0, baseGfn: 0x100n, npages: 4, flags: 0, userspaceAddr: memory.address });
    expect(memory.slotCount).toBe(1);

    slot.move(0x200000);
    expect(slot.baseGfn).toBe(0x200n);
    slot.setFlags(MemFlag.LOG_DIRTY_PAGES);
    expect(slot.flags).toBe(MemFlag.LOG_DIRTY_PAGES);
    expect(vm.findSlot(0x200fff)?.id).toBe(0);
    expect(vm.findSlot(0x100000)).toBeUndefined();

    // A second slot over part of the same memory, by offset.
    const second = vm.addSlot({ guestPhysAddr: 0x300000, memory, offset: 0x1000, size: 0x2000 });
    expect(second).toMatchObject({ id: 1, npages: 2, userspaceAddr: memory.address + 0x1000n });
    expect(vm.slots.map((s) => s.id)).toEqual([0, 1]);
    expect(memory.slotCount).toBe(2);

    slot.delete();
    expect(slot.deleted).toBe(true);
    expect(vm.slots.map((s) => s.id)).toEqual([1]);
    expect(memory.slotCount).toBe(1);
  });

  it('refuses overlapping guest-physical ranges before the ioctl, naming the slot', () => {
    using kvm = Kvm.open();
    using a = GuestMemory.allocate(0x2000);
    using b = GuestMemory.allocate(0x2000);
    using vm = kvm.createVm();
    vm.addSlot({ guestPhysAddr: 0x10000, memory: a });
    const err = catchError(() => vm.addSlot({ guestPhysAddr: 0x11000, memory: b }));
    expect(err).toBeInstanceOf(RangeError);
    expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect((err as Error).message).toMatch(/options\.guestPhysAddr' overlaps slot 0 \(0x10000-0x12000\)/);
    expect(b.slotCount).toBe(0);
    expect(vm.slots).toHaveLength(1);
  });

  it('refuses an unaligned guest-physical address or size before the ioctl, naming the field', () => {
    using kvm = Kvm.open();
    using memory = GuestMemory.allocate(0x2000);
    using vm = kvm.createVm();
    const gpa = catchError(() => vm.addSlot({ guestPhysAddr: 0x10800, memory }));
    expect(gpa).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect((gpa as Error).message).toMatch(/"options\.guestPhysAddr".*multiple of 4096/);
    const size = catchError(() => vm.addSlot({ guestPhysAddr: 0x10000, memory, size: 0x1800 }));
    expect(size).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect((size as Error).message).toMatch(/"options\.size"/);
    expect(memory.slotCount).toBe(0);
  });

  it('refuses a slot id in use, and a move onto another slot with EEXIST', () => {
    using kvm = Kvm.open();
    using a = GuestMemory.allocate(0x2000);
    using b = GuestMemory.allocate(0x2000);
    using vm = kvm.createVm();
    const slot = vm.addSlot({ guestPhysAddr: 0, memory: a, slot: 5 });
    expect(slot.id).toBe(5);
    expect(catchError(() => vm.addSlot({ guestPhysAddr: 0, memory: b, slot: 5 }))).toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
    // Moving onto another slot's range is an overlap.
    vm.addSlot({ guestPhysAddr: 0x10000, memory: b });
    expect(catchError(() => slot.move(0x10000))).toMatchObject({ code: 'EEXIST' });
    expect(slot.baseGfn).toBe(0n);
  });

  it('refuses a range past the end of the memory before asking KVM', () => {
    using kvm = Kvm.open();
    using memory = GuestMemory.allocate(0x2000);
    using vm = kvm.createVm();
    expect(catchError(() => vm.addSlot({ guestPhysAddr: 0, memory, offset: 0x1000, size: 0x2000 }))).toMatchObject({
      code: 'ERR_OUT_OF_RANGE',
    });
    expect(memory.slotCount).toBe(0);
  });

  it('keeps registered memory from being closed (EBUSY) until its slot is deleted', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    const memory = GuestMemory.allocate(0x1000);
    const slot = vm.addSlot({ guestPhysAddr: 0, memory });
    expect(catchError(() => memory.close())).toMatchObject({ code: 'EBUSY' });
    expect(memory.closed).toBe(false);
    slot.delete();
    memory.close();
    expect(memory.closed).toBe(true);
    expect(catchError(() => memory.buffer)).toMatchObject({ code: 'EBADF' });
  });

  it('lets go of slot memory when the VM closes', () => {
    using kvm = Kvm.open();
    const vm = kvm.createVm();
    using memory = GuestMemory.allocate(0x1000);
    const slot = vm.addSlot({ guestPhysAddr: 0, memory });
    vm.close();
    expect(slot.deleted).toBe(true);
    expect(memory.slotCount).toBe(0);
  });
});
