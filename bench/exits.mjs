// Exit rows: port-I/O and MMIO round trips through run() and runAsync(),
// and a whole VM's life, against bench/exits.c.
import { check, cProgram, lib, now, unexpected, usSince } from './harness.mjs';
import { GUESTS, MMIO_BASE, PORT } from './guests.mjs';

const { GuestMemory, Kvm, realModeGuest } = lib;

/** A realModeGuest running `code` with rcx = n, closed after `measure(guest)`. */
export async function withGuest(code, n, measure) {
  const g = realModeGuest(code);
  try {
    g.vcpu.setRegs({ rcx: n });
    return await measure(g);
  } finally {
    g.close();
  }
}

/** Runs ioLoop to hlt with run(): microseconds per `out` exit. */
export function ioExits(vcpu, n) {
  let exits = 0;
  const t0 = now();
  for (;;) {
    const exit = vcpu.run();
    if (exit.reason === 'io' && exit.port === PORT) exits++;
    else if (exit.reason === 'hlt') break;
    else if (exit.reason !== 'intr') throw unexpected(exit);
  }
  const us = usSince(t0);
  check('I/O exits', exits, n);
  return us / n;
}

/** Write i of mmioBurst: byte i & 0xff at MMIO_BASE + (i & 0xffff). */
export function checkWrite(i, address, byte) {
  if (Number(address) - MMIO_BASE !== (i & 0xffff) || byte !== (i & 0xff)) {
    throw new Error(`MMIO write ${i}: byte ${byte} at ${address.toString(16)}, expected ${i & 0xff} at ${(MMIO_BASE + (i & 0xffff)).toString(16)}`);
  }
}

/** Runs mmioBurst to hlt with run(): microseconds per MMIO write exit. */
export function mmioExits(vcpu, n) {
  let writes = 0;
  const t0 = now();
  for (;;) {
    const exit = vcpu.run();
    if (exit.reason === 'mmio' && exit.isWrite) checkWrite(writes++, exit.address, exit.data[0]);
    else if (exit.reason === 'hlt') break;
    else if (exit.reason !== 'intr') throw unexpected(exit);
  }
  const us = usSince(t0);
  check('MMIO exits', writes, n);
  return us / n;
}

// ioExits with runAsync(): a loop of its own, so that the sync one pays no
// await and neither pays for a callback.
async function ioExitsAsync(vcpu, n) {
  let exits = 0;
  const t0 = now();
  for (;;) {
    const exit = await vcpu.runAsync();
    if (exit.reason === 'io' && exit.port === PORT) exits++;
    else if (exit.reason === 'hlt') break;
    else if (exit.reason !== 'intr') throw unexpected(exit);
  }
  const us = usSince(t0);
  check('I/O exits', exits, n);
  return us / n;
}

// bench/exits.c's real_mode_at_code() zeroes every general register, then
// sets rip and rflags: all 18 named, so setRegs() needs no KVM_GET_REGS.
const REGS = { rax: 0, rbx: 0, rcx: 0, rdx: 0, rsi: 0, rdi: 0, rsp: 0, rbp: 0, r8: 0, r9: 0, r10: 0, r11: 0, r12: 0, r13: 0, r14: 0, r15: 0, rip: 0x1000, rflags: 2 };

// The ioctls of bench/exits.c's lifecycle, through the public API: no TSS
// or identity map (createVm's default adds them for Intel's real mode).
// With `steps` (bench/parts.mjs) each step's microseconds are added into
// it, in the order of exits.c's STEP()s.
export function lifecycles(n, steps) {
  const kvm = Kvm.open();
  const step = stepper(steps);
  try {
    const t0 = now();
    for (let i = 0; i < n; i++) {
      step(-1);
      const memory = GuestMemory.allocate(1 << 20);
      step(0);
      memory.view(0x1000, 1)[0] = 0xf4; // hlt
      step(1);
      const vm = kvm.createVm({ tssAddr: null });
      step(2);
      vm.addSlot({ guestPhysAddr: 0, memory });
      step(3);
      const vcpu = vm.createVcpu();
      step(4);
      vcpu.setSregs({ cs: { base: 0, selector: 0 } });
      step(5);
      vcpu.setRegs(REGS);
      step(6);
      let exit = vcpu.run();
      while (exit.reason === 'intr') exit = vcpu.run();
      if (exit.reason !== 'hlt') throw unexpected(exit);
      step(7);
      vm.close();
      step(8);
      memory.close();
      step(9);
    }
    return usSince(t0) / n;
  } finally {
    kvm.close();
  }
}

/**
 * step(k) adds the microseconds since the last step into steps[k] (k = -1
 * only starts the clock); without steps it does nothing.
 */
export function stepper(steps) {
  if (steps === undefined) return () => {};
  let t = now();
  return (k) => {
    const u = now();
    if (k >= 0) steps[k] += Number(u - t) / 1e3;
    t = u;
  };
}

export const rows = [
  {
    id: 'io',
    name: 'I/O exit round trip, run()',
    goal: 1.05,
    warmup: 100,
    c: cProgram('exits', 'io', GUESTS.ioLoop),
    js: (n) => withGuest(GUESTS.ioLoop, n, (g) => ioExits(g.vcpu, n)),
  },
  {
    id: 'mmio',
    name: 'MMIO exit round trip, run()',
    goal: 1.05,
    warmup: 100,
    c: cProgram('exits', 'mmio', GUESTS.mmioBurst),
    js: (n) => withGuest(GUESTS.mmioBurst, n, (g) => mmioExits(g.vcpu, n)),
  },
  {
    id: 'io-async',
    pin: false,
    name: 'I/O exit round trip, runAsync()',
    goal: 1.5,
    warmup: 100,
    c: cProgram('exits', 'io', GUESTS.ioLoop),
    js: (n) => withGuest(GUESTS.ioLoop, n, (g) => ioExitsAsync(g.vcpu, n)),
  },
  {
    id: 'lifecycle',
    // Unpinned: a VM's creation and teardown work on every CPU (the
    // text-patching IPIs of vCPU create and destroy), and with this thread
    // pinned node-kvm's ratio read higher (1.18-1.23 against 1.07-1.17).
    pin: false,
    name: 'create VM + 1 MiB slot + vCPU, run to HLT, close',
    goal: 1.1,
    warmup: 10,
    min: 3,
    c: cProgram('exits', 'lifecycle'),
    js: lifecycles,
  },
];
