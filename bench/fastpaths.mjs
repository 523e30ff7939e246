// Fast-path rows, against bench/fastpaths.c: each does what an exit per
// access does more cheaply, and the table shows how much it saves on both
// sides (`baseline` names the row it replaces; `needs`, the capability).
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { check, cProgram, lib, now, unexpected, usSince } from './harness.mjs';
import { checkWrite, withGuest } from './exits.mjs';
import { GUESTS, MMIO_BASE, PORT } from './guests.mjs';

const { coalescedRingSize, EventFd, GuestMemory } = lib;

// ioLoop where the VMM adds 1 to rbx at each exit: by KVM_GET_REGS +
// KVM_SET_REGS, or in kvm_run with sync_regs. rbx = n at the end proves
// every write reached the guest.
function registerExits(vcpu, n, synced) {
  if (synced) vcpu.syncRegs({ regs: true });
  let exits = 0;
  const t0 = now();
  for (;;) {
    const exit = vcpu.run();
    if (exit.reason === 'io' && exit.port === PORT) {
      exits++;
      if (synced) vcpu.setSyncedRegs({ rbx: vcpu.syncedRegs().rbx + 1n });
      else {
        const regs = vcpu.getRegs();
        regs.rbx += 1n;
        vcpu.setRegs(regs); // all 18 named: no second KVM_GET_REGS
      }
    } else if (exit.reason === 'hlt') break;
    else if (exit.reason !== 'intr') throw unexpected(exit);
  }
  const us = usSince(t0);
  check('I/O exits', exits, n);
  check('rbx', vcpu.getRegs().rbx, BigInt(n));
  return us / n;
}

// mmioBurst into a coalesced zone: the ring takes the writes, an exit comes
// only when it is full (or at hlt), and the VMM drains it then.
function coalescedWrites(g, n) {
  g.vm.addCoalescedZone({ address: MMIO_BASE, size: 0x10000 });
  let writes = 0;
  let exits = 0;
  const collect = (address, length, data) => checkWrite(writes++, address, data[0]);
  const t0 = now();
  for (;;) {
    const exit = g.vcpu.run();
    exits++;
    g.vcpu.drainCoalesced(collect); // the queued writes came before the exit's own
    if (exit.reason === 'hlt') break;
    if (exit.reason === 'mmio' && exit.isWrite) checkWrite(writes++, exit.address, exit.data[0]);
    else if (exit.reason !== 'intr') throw unexpected(exit);
  }
  const us = usSince(t0);
  check('coalesced writes', writes, n);
  if (exits > n / (coalescedRingSize - 1) + 10) throw new Error(`${exits} exits for ${n} coalesced writes: the zone did not take them`);
  return us / n;
}

// ioLoop with an ioeventfd on its port: no exit until hlt, and the
// eventfd's counter says how many doorbells rang.
function doorbells(g, n) {
  const doorbell = new EventFd();
  try {
    g.vm.ioeventfd({ address: PORT, length: 1, pio: true, eventfd: doorbell });
    const t0 = now();
    for (;;) {
      const exit = g.vcpu.run();
      if (exit.reason === 'hlt') break;
      if (exit.reason !== 'intr') throw unexpected(exit);
    }
    const us = usSince(t0);
    check('doorbells counted by the eventfd', doorbell.read(), BigInt(n));
    return us / n;
  } finally {
    doorbell.close();
  }
}

// ioLoop run with sync run() in a Worker, on guest memory the main thread
// made and filled: memory that crosses threads is a SharedArrayBuffer (here
// a shared WebAssembly.Memory's, page-aligned), which GuestMemory.from()
// takes on both sides. The main thread stays free: a timer must tick.
let worker;
async function workerExits(n) {
  if (worker === undefined) {
    const memory = GuestMemory.from(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true })); // 64 KiB
    memory.bytes.set(GUESTS.ioLoop, 0x1000);
    worker = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: { memory: memory.buffer } });
    worker.unref();
  }
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    worker.postMessage(n);
    const [us] = await once(worker, 'message');
    if (us * n > 50_000 && ticks === 0) throw new Error('the main thread did not run while the worker ran its guest');
    return us;
  } finally {
    clearInterval(timer);
  }
}

export async function closeWorker() {
  await worker?.terminate();
  worker = undefined;
}

export const section = 'fast paths, per exit, write or doorbell, each against an exit per access:';

export const rows = [
  {
    id: 'regs',
    name: 'I/O exit + KVM_GET_REGS + KVM_SET_REGS',
    goal: null,
    warmup: 100,
    c: cProgram('fastpaths', 'regs', GUESTS.ioLoop),
    js: (n) => withGuest(GUESTS.ioLoop, n, (g) => registerExits(g.vcpu, n, false)),
  },
  {
    id: 'syncregs',
    name: '  the same through kvm_run (sync_regs)',
    goal: null,
    needs: 'SYNC_REGS',
    baseline: { id: 'regs', versus: 'GET/SET_REGS' },
    warmup: 100,
    c: cProgram('fastpaths', 'syncregs', GUESTS.ioLoop),
    js: (n) => withGuest(GUESTS.ioLoop, n, (g) => registerExits(g.vcpu, n, true)),
  },
  {
    id: 'coalesced',
    name: 'MMIO write into a coalesced zone',
    goal: null,
    needs: 'COALESCED_MMIO',
    baseline: { id: 'mmio', versus: 'an MMIO exit' },
    warmup: 2000,
    c: cProgram('fastpaths', 'coalesced', GUESTS.mmioBurst),
    js: (n) => withGuest(GUESTS.mmioBurst, n, (g) => coalescedWrites(g, n)),
  },
  {
    id: 'ioeventfd',
    name: 'doorbell `out` to an ioeventfd',
    goal: null,
    needs: 'IOEVENTFD',
    baseline: { id: 'io', versus: 'an I/O exit' },
    warmup: 2000,
    c: cProgram('fastpaths', 'ioeventfd', GUESTS.ioLoop),
    js: (n) => withGuest(GUESTS.ioLoop, n, (g) => doorbells(g, n)),
  },
  {
    id: 'worker',
    pin: false,
    name: 'I/O exit round trip, run() in a Worker',
    goal: null,
    warmup: 100,
    c: cProgram('exits', 'io', GUESTS.ioLoop),
    js: workerExits,
  },
];
