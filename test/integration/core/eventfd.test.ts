// kvm-test: smoke
// Eventfds (KVM_IOEVENTFD doorbells, KVM_IRQFD interrupts), coalesced
// MMIO/PIO and the dirty ring, against real KVM. Each part is gated on its
// capability; a skipped part says why in its title and on stdout.
import { describe, expect, it } from 'vitest';
import { Cap, coalescedRingSize, EventFd, IrqChip, Kvm, KvmError, MemFlag } from '../../../lib';
import { DATA, Toucher } from '../../../examples/toucher';
import { catchError, realModeGuest, runToExit } from '../helpers';

const caps = (() => {
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  return {
    ioeventfd: vm.checkExtension(Cap.IOEVENTFD),
    irqfd: vm.checkExtension(Cap.IRQFD),
    irqchip: vm.checkExtension(Cap.IRQCHIP),
    resample: vm.checkExtension(Cap.IRQFD_RESAMPLE),
    coalescedMmio: vm.checkExtension(Cap.COALESCED_MMIO),
    coalescedPio: vm.checkExtension(Cap.COALESCED_PIO),
    dirtyRing: Math.max(vm.checkExtension(Cap.DIRTY_LOG_RING), vm.checkExtension(Cap.DIRTY_LOG_RING_ACQ_REL)),
  };
})();

/** A describe title that says why it is skipped, and the reason on stdout. */
function gated(title: string, cap: keyof typeof caps, capName: string): [boolean, string] {
  const skip = caps[cap] === 0;
  if (skip) console.log(`eventfd.test: skipping "${title}": ${capName} is 0 on this KVM`);
  return [skip, skip ? `${title} (skipped: ${capName} is 0 on this KVM)` : title];
}

const PORT = 0x600;
// mov dx, 0x600; mov al, 0x2a; out dx, al; hlt
const OUT_42 = [0xba, 0x00, 0x06, 0xb0, 0x2a, 0xee, 0xf4];
// mov dx, 0x600; mov al, 5; out dx, al; mov al, 7; out dx, al; hlt
const OUT_5_7 = [0xba, 0x00, 0x06, 0xb0, 0x05, 0xee, 0xb0, 0x07, 0xee, 0xf4];
// mov ax, 0xd000; mov ds, ax; mov dword [0], 0x12345678; hlt
const MMIO_D0000 = [0xb8, 0x00, 0xd0, 0x8e, 0xd8, 0x66, 0xc7, 0x06, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0xf4];

describe('EventFd', () => {
  it('counts writes, reads without blocking, and wait() resolves from the event loop', async () => {
    using e = new EventFd();
    expect(e.fd).toBeGreaterThan(2);
    expect(e.read()).toBeUndefined();
    e.write();
    e.write(2);
    expect(e.read()).toBe(3n);
    expect(e.read()).toBeUndefined();
    const waited = e.wait();
    expect(e.pendingWaits).toBe(1);
    let ticked = false;
    setTimeout(() => {
      ticked = true;
      e.write(5n);
    }, 20);
    expect(await waited).toBe(5n);
    expect(ticked).toBe(true);
    expect(e.pendingWaits).toBe(0);
    e.write(1n);
    expect(await e.wait()).toBe(1n); // already non-zero: at once
  });

  it('rejects pending waits on close, and refuses use after close with EBADF', async () => {
    const e = new EventFd();
    const waited = e.wait();
    e.close();
    await expect(waited).rejects.toMatchObject({ code: 'EBADF' });
    expect(e.closed).toBe(true);
    expect(e.fd).toBe(-1);
    expect(catchError(() => e.write())).toMatchObject({ code: 'EBADF' });
    await expect(e.wait()).rejects.toBeInstanceOf(KvmError);
    e.close(); // idempotent
  });

  it('validates what it writes', () => {
    using e = new EventFd();
    expect(catchError(() => e.write(0))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => e.write(2n ** 64n - 1n))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => e.write('1' as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    e.write(2n ** 64n - 2n);
    expect(catchError(() => e.write(1))).toMatchObject({ code: 'EAGAIN' }); // would overflow
  });
});

describe.skipIf(gated('KVM_IOEVENTFD', 'ioeventfd', 'KVM_CAP_IOEVENTFD')[0])(gated('KVM_IOEVENTFD', 'ioeventfd', 'KVM_CAP_IOEVENTFD')[1], () => {
  it('a port write signals the eventfd and the guest goes on to hlt without an I/O exit', async () => {
    using g = realModeGuest(OUT_42);
    using e = new EventFd();
    const reg = g.vm.ioeventfd({ address: PORT, length: 1, pio: true, eventfd: e });
    const waited = e.wait();
    expect(await g.vcpu.runAsync()).toMatchObject({ reason: 'hlt' });
    expect(await waited).toBe(1n);
    expect(reg).toMatchObject({ address: BigInt(PORT), length: 1, pio: true, removed: false });
  });

  it('an MMIO write outside every slot signals instead of exiting', async () => {
    using g = realModeGuest(MMIO_D0000);
    using e = new EventFd();
    g.vm.ioeventfd({ address: 0xd0000, length: 4, eventfd: e });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'hlt' });
    expect(await e.wait()).toBe(1n);
  });

  it('with datamatch, only the matching value signals; other values exit as usual', () => {
    using g = realModeGuest(OUT_5_7);
    using e = new EventFd();
    g.vm.ioeventfd({ address: PORT, length: 1, pio: true, datamatch: 7, eventfd: e });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', port: PORT, direction: 'out', value: 5 });
    expect(e.read()).toBeUndefined();
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'hlt' });
    expect(e.read()).toBe(1n);
  });

  it('remove() (or closing the eventfd) makes the write exit again', () => {
    using g = realModeGuest(OUT_42);
    const e = new EventFd();
    const reg = g.vm.ioeventfd({ address: PORT, length: 1, pio: true, eventfd: e });
    reg.remove();
    expect(reg.removed).toBe(true);
    reg.remove(); // idempotent
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', port: PORT, value: 0x2a });
    const again = g.vm.ioeventfd({ address: PORT, length: 1, pio: true, eventfd: e });
    e.close();
    expect(again.removed).toBe(true);
    g.vcpu.setRegs({ rip: 0x1000 });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', port: PORT, value: 0x2a });
  });

  it('checks its options before the ioctl, and KVM refuses a duplicate', () => {
    using g = realModeGuest([0xf4]);
    using e = new EventFd();
    const any = (o: unknown) => o as never;
    expect(catchError(() => g.vm.ioeventfd(any({ address: PORT, length: 3, pio: true, eventfd: e })))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(catchError(() => g.vm.ioeventfd({ address: PORT, length: 1, pio: true, datamatch: 256, eventfd: e }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => g.vm.ioeventfd({ address: PORT, length: 0, pio: true, datamatch: 1, eventfd: e }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(catchError(() => g.vm.ioeventfd({ address: 0xffff, length: 2, pio: true, eventfd: e }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => g.vm.ioeventfd(any({ address: PORT, length: 1, eventfd: {} })))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(catchError(() => g.vm.ioeventfd(any({ address: PORT, length: 1, eventfd: e, rpi: 1 })))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    const closed = new EventFd();
    closed.close();
    expect(catchError(() => g.vm.ioeventfd({ address: PORT, length: 1, eventfd: closed }))).toMatchObject({ code: 'EBADF' });
    g.vm.ioeventfd({ address: PORT, length: 1, pio: true, eventfd: e });
    expect(catchError(() => g.vm.ioeventfd({ address: PORT, length: 1, pio: true, eventfd: e }))).toMatchObject({ code: 'EEXIST', syscall: 'KVM_IOEVENTFD' });
  });
});

// Real mode at 0x1000: program the master PIC (vectors 0x20-0x27, only IRQ 4
// unmasked), enable interrupts and halt (in the kernel: the irqchip is
// there). IRQ 4's handler at 0x1100 prints 0x42 on port 0xE9 and halts.
const PIC_GUEST = [
  0xb0, 0x11, 0xe6, 0x20, 0xb0, 0x20, 0xe6, 0x21, 0xb0, 0x04, 0xe6, 0x21, 0xb0, 0x01, 0xe6, 0x21,
  0xb0, 0xef, 0xe6, 0x21, 0xfb, 0xf4, 0xeb, 0xfd,
];

const irqfdGate = caps.irqfd === 0 ? gated('KVM_IRQFD', 'irqfd', 'KVM_CAP_IRQFD') : gated('KVM_IRQFD', 'irqchip', 'KVM_CAP_IRQCHIP');
describe.skipIf(irqfdGate[0])(irqfdGate[1], () => {
  it('writing the eventfd raises the IRQ: the halted guest takes it through the PIC and its IVT handler runs', async () => {
    using g = realModeGuest(PIC_GUEST, { memorySize: 0x2000, irqchip: true });
    new DataView(g.memory.buffer).setUint32(0x24 * 4, 0x1100, true); // IVT[0x24] = 0000:1100
    g.memory.bytes.set([0xb0, 0x42, 0xe6, 0xe9, 0xf4], 0x1100);
    g.vcpu.setRegs({ rsp: 0x1f00 });
    using e = new EventFd();
    const reg = g.vm.irqfd({ gsi: 4, eventfd: e });
    expect(reg).toMatchObject({ gsi: 4, removed: false });
    const run = g.vcpu.runAsync({ timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50)); // the guest programs the PIC and halts
    e.write();
    expect(await run).toMatchObject({ reason: 'io', port: 0xe9, value: 0x42 });
  });

  it('shows the raised line in the PIC\'s IRR; after remove() a write raises nothing', async () => {
    using g = realModeGuest([0xf4], { irqchip: true });
    using e = new EventFd();
    const irr = () => g.vm.getPic(IrqChip.PIC_MASTER).irr;
    const reg = g.vm.irqfd({ gsi: 3, eventfd: e });
    e.write();
    // KVM injects from a work queue: give it a moment.
    for (let i = 0; i < 100 && !(irr() & (1 << 3)); i++) await new Promise((r) => setTimeout(r, 5));
    expect(irr() & (1 << 3)).toBe(1 << 3);
    reg.remove();
    expect(reg.removed).toBe(true);
    const other = g.vm.irqfd({ gsi: 5, eventfd: e });
    other.remove();
    e.write();
    await new Promise((r) => setTimeout(r, 50));
    expect(irr() & (1 << 5)).toBe(0);
  });

  it.skipIf(caps.resample === 0)(`registers a level-triggered irqfd with a resample eventfd${caps.resample === 0 ? ' (skipped: KVM_CAP_IRQFD_RESAMPLE is 0)' : ''}`, () => {
    using g = realModeGuest([0xf4], { irqchip: true });
    using e = new EventFd();
    using resample = new EventFd();
    const reg = g.vm.irqfd({ gsi: 10, eventfd: e, resample });
    resample.close(); // closing either EventFd removes the registration
    expect(reg.removed).toBe(true);
  });

  it('refuses a VM without the irqchip (EINVAL, or EAGAIN on older kernels, with the fix) and bad options before the ioctl', () => {
    using g = realModeGuest([0xf4]);
    using e = new EventFd();
    const err = catchError(() => g.vm.irqfd({ gsi: 4, eventfd: e }));
    expect(err).toMatchObject({ code: expect.stringMatching(/^(EINVAL|EAGAIN)$/), syscall: 'KVM_IRQFD' });
    expect((err as Error).message).toMatch(/createIrqchip/);
    expect(catchError(() => g.vm.irqfd({ gsi: 4096, eventfd: e }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => g.vm.irqfd({ gsi: 1, eventfd: e, resample: e }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(catchError(() => g.vm.irqfd({ gsi: 1.5, eventfd: e }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });
});

const N = 10;
// mov ax, 0xd000; mov ds, ax; xor bx, bx; mov cx, N; mov al, 1
// 1: mov [bx], al; inc bx; inc al; loop 1b; hlt
const MMIO_BURST = (n: number) => [0xb8, 0x00, 0xd0, 0x8e, 0xd8, 0x31, 0xdb, 0xb9, n & 0xff, n >> 8, 0xb0, 0x01, 0x88, 0x07, 0x43, 0xfe, 0xc0, 0xe2, 0xf9, 0xf4];
// mov dx, 0x700; mov cx, N; mov al, 1; 1: out dx, al; inc al; loop 1b; hlt
const PIO_BURST = [0xba, 0x00, 0x07, 0xb9, N, 0x00, 0xb0, 0x01, 0xee, 0xfe, 0xc0, 0xe2, 0xfb, 0xf4];

describe.skipIf(gated('coalesced MMIO', 'coalescedMmio', 'KVM_CAP_COALESCED_MMIO')[0])(gated('coalesced MMIO', 'coalescedMmio', 'KVM_CAP_COALESCED_MMIO')[1], () => {
  it('a burst of MMIO writes to a zone exits once (at hlt), and the ring holds every write in order', () => {
    using g = realModeGuest(MMIO_BURST(N));
    const zone = g.vm.addCoalescedZone({ address: 0xd0000, size: 0x1000 });
    expect(zone).toMatchObject({ address: 0xd0000n, size: 0x1000, pio: false });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'hlt' });
    const writes = g.vcpu.drainCoalesced();
    expect(writes).toEqual(Array.from({ length: N }, (_, i) => ({ address: 0xd0000n + BigInt(i), length: 1, data: Uint8Array.of(i + 1), pio: false })));
    expect(g.vcpu.drainCoalesced()).toEqual([]); // consumed
  });

  it('the callback form reuses one buffer, and a full ring falls back to MMIO exits', () => {
    const total = coalescedRingSize + 30;
    using g = realModeGuest(MMIO_BURST(total));
    g.vm.addCoalescedZone({ address: 0xd0000, size: 0x1000 });
    const seen: number[] = [];
    const buffers = new Set<Uint8Array>();
    const collect = (address: bigint, length: number, data: Uint8Array, pio: boolean) => {
      expect([length, pio]).toEqual([1, false]);
      buffers.add(data);
      seen.push(Number(address - 0xd0000n), data[0]!);
    };
    let exits = 0;
    for (;;) {
      const exit = runToExit(g.vcpu);
      exits++;
      g.vcpu.drainCoalesced(collect); // first the queued writes, then the exit's
      if (exit.reason === 'hlt') break;
      expect(exit).toMatchObject({ reason: 'mmio', isWrite: true, length: 1 });
      if (exit.reason === 'mmio') seen.push(Number(exit.address - 0xd0000n), exit.data[0]!);
    }
    expect(exits).toBeGreaterThan(1); // the ring filled
    expect(exits).toBeLessThan(total / 10);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => [i, (i + 1) & 0xff]).flat());
    expect(buffers.size).toBe(1);
  });

  it.skipIf(caps.coalescedPio === 0)(`a burst of port writes to a PIO zone exits once${caps.coalescedPio === 0 ? ' (skipped: KVM_CAP_COALESCED_PIO is 0)' : ''}`, () => {
    using g = realModeGuest(PIO_BURST);
    const zone = g.vm.addCoalescedZone({ address: 0x700, size: 1, pio: true });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'hlt' });
    expect(g.vcpu.drainCoalesced()).toEqual(Array.from({ length: N }, (_, i) => ({ address: 0x700n, length: 1, data: Uint8Array.of(i + 1), pio: true })));
    zone.remove();
    g.vcpu.setRegs({ rip: 0x1000 });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', port: 0x700, value: 1 }); // removed: exits again
  });

  it('checks zones before the ioctl and refuses a closed vCPU', () => {
    using g = realModeGuest([0xf4]);
    expect(catchError(() => g.vm.addCoalescedZone({ address: 0xd0000, size: 0 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => g.vm.addCoalescedZone({ address: 0xff00, size: 0x200, pio: true }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => g.vm.addCoalescedZone({ address: 2n ** 64n - 1n, size: 2 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => g.vcpu.drainCoalesced(1 as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    g.vcpu.close();
    expect(catchError(() => g.vcpu.drainCoalesced())).toMatchObject({ code: 'EBADF' });
  });
});

const RING_BYTES = 0x10000; // 4096 entries: room for KVM's reserve (64, plus 512 with Intel PML)
const page = (p: number) => p * 4096 + 0x123;

describe.skipIf(gated('the dirty ring', 'dirtyRing', 'KVM_CAP_DIRTY_LOG_RING')[0])(gated('the dirty ring', 'dirtyRing', 'KVM_CAP_DIRTY_LOG_RING')[1], () => {
  it('harvests exactly the pages written, and after a reset only the pages written again', () => {
    using t = new Toucher({ dataSize: 0x40000, dataFlags: MemFlag.LOG_DIRTY_PAGES, beforeSlots: (vm) => vm.enableDirtyRing(RING_BYTES) });
    expect(t.vm.dirtyRingBytes).toBe(RING_BYTES);
    const slot = t.vm.findSlot(DATA)!.id;
    t.touch([3, 5, 9].map(page));
    expect(t.vcpu.harvestDirtyRing()).toEqual([3n, 5n, 9n].map((offset) => ({ slot, offset })));
    expect(t.vcpu.harvestDirtyRing()).toEqual([]); // harvested
    expect(t.vm.resetDirtyRings()).toBe(3);
    t.touch([page(5)]);
    expect(t.vcpu.harvestDirtyRing()).toEqual([{ slot, offset: 5n }]);
    t.vm.resetDirtyRings();
    // In bulk, into caller-owned arrays, a batch at a time.
    t.touch([1, 2, 7].map(page));
    const slots = new Uint32Array(2);
    const offsets = new BigUint64Array(2);
    expect(t.vcpu.harvestDirtyRingInto(slots, offsets)).toBe(2);
    expect([...offsets]).toEqual([1n, 2n]);
    expect(t.vcpu.harvestDirtyRingInto(slots, offsets)).toBe(1);
    expect([slots[0], offsets[0]]).toEqual([slot, 7n]);
    expect(t.vcpu.harvestDirtyRingInto(slots, offsets)).toBe(0);
  });

  it('replaces the bitmap: getDirtyLog() fails with ENXIO and says why', () => {
    using t = new Toucher({ dataSize: 0x40000, dataFlags: MemFlag.LOG_DIRTY_PAGES, beforeSlots: (vm) => vm.enableDirtyRing(RING_BYTES) });
    const err = catchError(() => t.vm.findSlot(DATA)!.getDirtyLog());
    expect(err).toMatchObject({ code: 'ENXIO', syscall: 'KVM_GET_DIRTY_LOG' });
    expect((err as Error).message).toMatch(/harvestDirtyRing/);
  });

  it('is enabled only before the first vCPU, once, with a power-of-two size; harvest needs it', () => {
    using kvm = Kvm.open();
    using vm = kvm.createVm();
    expect(catchError(() => vm.enableDirtyRing(RING_BYTES + 4096))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => vm.enableDirtyRing(1024))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(catchError(() => vm.enableDirtyRing(1 << 30))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    using other = kvm.createVm();
    const vcpu = other.createVcpu();
    expect(catchError(() => other.enableDirtyRing(RING_BYTES))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: /before the VM's first vCPU/ });
    expect(catchError(() => vcpu.harvestDirtyRing())).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: /enableDirtyRing/ });
    expect(catchError(() => other.resetDirtyRings())).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    vm.enableDirtyRing(RING_BYTES);
    expect(catchError(() => vm.enableDirtyRing(RING_BYTES))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: /already/ });
    const v = vm.createVcpu();
    expect(catchError(() => v.harvestDirtyRingInto(new Uint32Array(1), new Uint32Array(1) as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    v.close();
    expect(catchError(() => v.harvestDirtyRing())).toMatchObject({ code: 'EBADF' });
  });
});
