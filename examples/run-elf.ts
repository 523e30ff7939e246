// Runs one of the C guests in examples/guests (or any x86 ELF) in a chosen mode.
//   npm run build:guests && npx tsx examples/run-elf.ts long [file.elf]
// Modes: real, protected, paged, pae, long. paged and pae (32-bit paging)
// need a KVM with VT-x/AMD-V; on one without (PVM), run it in the sandbox:
//   node sandbox/cli.mjs -- npx tsx examples/run-elf.ts paged
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuestMemory, Kvm, loadElf, runUntilHalt, setupMode, type GuestMode } from 'node-kvm';

const mode = (process.argv[2] ?? 'long') as GuestMode;
const file = process.argv[3] ?? join(__dirname, '../build/guests', `${mode}.elf`);

/** Says what is missing when the guest cannot run here, instead of a stack trace. */
function explain(e: Error): string {
  if (!existsSync(file)) {
    return process.argv[3]
      ? `no such file: ${file}`
      : `${file} is not built: build the C guests first with \`npm run build:guests\` (needs gcc)`;
  }
  if ((mode === 'paged' || mode === 'pae') && ['ENOTSUP', 'EOPNOTSUPP'].includes((e as { code?: string }).code ?? '')) {
    return `${e.message}\n32-bit paging needs a KVM with VT-x/AMD-V; try: node sandbox/cli.mjs -- npx tsx examples/run-elf.ts ${mode}`;
  }
  return e.message;
}

function main(): void {
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
}

try {
  main();
} catch (e) {
  console.error(`run-elf: ${explain(e as Error)}`);
  process.exitCode = 1;
}
