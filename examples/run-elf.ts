// Runs one of the C guests in examples/guests (or any x86 ELF) in a chosen mode.
// npm run build:guests && node -r ./scripts/ts-register.cjs examples/run-elf.ts long [file.elf]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuestMemory, Kvm, loadElf, runUntilHalt, setupMode, type GuestMode } from '../lib';

const mode = (process.argv[2] ?? 'long') as GuestMode;
const file = process.argv[3] ?? join(__dirname, '../build/guests', `${mode}.elf`);

using kvm = Kvm.open();
using memory = GuestMemory.allocate(4 << 20);
using vm = kvm.createVm();
vm.addSlot({ guestPhysAddr: 0, memory });
const program = loadElf(vm, readFileSync(file));
using vcpu = vm.createVcpu();
setupMode(vcpu, { mode, entry: program.entry, avoid: program.ranges });
let output = '';
const exits = runUntilHalt(vcpu, {
  io(exit) {
    if (exit.direction === 'out') output += String.fromCharCode(...exit.data);
  },
});
process.stdout.write(output);
const eax = vcpu.getRegs().rax & 0xffffffffn;
console.log(`halted after ${exits} exits; eax = ${eax}; [0x400] = ${new DataView(memory.buffer).getUint32(0x400, true)}`);
