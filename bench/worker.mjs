// The Worker of the `worker` row (bench/fastpaths.mjs): one VM over the
// main thread's shared memory; each message n runs ioLoop n times with sync
// run() and answers microseconds per exit.
import { parentPort, workerData } from 'node:worker_threads';
import { ioExits } from './exits.mjs';
import { lib } from './harness.mjs';

const { GuestMemory, Kvm, setupMode } = lib;
const memory = GuestMemory.from(workerData.memory);
const vm = Kvm.open().createVm();
vm.addSlot({ guestPhysAddr: 0, memory });
const vcpu = vm.createVcpu();
setupMode(vcpu, { mode: 'real', entry: 0x1000 });

parentPort.on('message', (n) => {
  vcpu.setRegs({ rip: 0x1000, rcx: n });
  parentPort.postMessage(ioExits(vcpu, n));
});
