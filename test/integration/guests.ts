// Runs the C guests of examples/guests, built by scripts/build-guests.mjs.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { GuestMemory, Kvm, loadElf, runUntilHalt, setupMode, type GuestMode, type ModeOptions, type ModeSetup, type Vcpu, type Vm } from '../../lib';
// @ts-expect-error: plain ESM script without types
import { buildGuests } from '../../scripts/build-guests.mjs';

export const GUEST_MEMORY = 0x400000; // 4 MiB at guest-physical 0

export interface CGuest {
  vm: Vm;
  vcpu: Vcpu;
  memory: GuestMemory;
  setup: ModeSetup;
  /** Runs to hlt, collecting what the guest printed on port 0xE9. */
  run(): { output: string; eax: number; at0x400: number };
  [Symbol.dispose](): void;
}

/** Loads the `mode` guest's ELF into fresh memory (filled with 0xff, so .bss zeroing shows) and sets the vCPU up. */
export function cGuest(mode: GuestMode, extra: Partial<ModeOptions> = {}, memoryStart = 0): CGuest {
  const paths = buildGuests() as Record<GuestMode, string>;
  const kvm = Kvm.open();
  const memory = GuestMemory.allocate(GUEST_MEMORY - memoryStart);
  memory.bytes.fill(0xff);
  const vm = kvm.createVm();
  vm.addSlot({ guestPhysAddr: memoryStart, memory });
  const program = loadElf(vm, readFileSync(paths[mode]));
  const vcpu = vm.createVcpu();
  const setup = setupMode(vcpu, { mode, entry: program.entry, avoid: program.ranges, ...extra });
  return {
    vm,
    vcpu,
    memory,
    setup,
    run() {
      let output = '';
      runUntilHalt(vcpu, {
        io(e) {
          if (e.port !== 0xe9 || e.direction !== 'out') throw new Error(`unexpected io on port ${e.port}`);
          output += String.fromCharCode(...e.data);
        },
      });
      const at0x400 = new DataView(memory.buffer).getUint32(0x400 - memoryStart, true);
      return { output, eax: Number(vcpu.getRegs().rax & 0xffffffffn), at0x400 };
    },
    [Symbol.dispose]() {
      vm.close();
      memory.close();
      kvm.close();
    },
  };
}

/** The address of a symbol in a mode's guest, from its ELF symbol table. */
export function symbol(mode: GuestMode, name: string): bigint {
  const paths = buildGuests() as Record<GuestMode, string>;
  const line = execFileSync('nm', [paths[mode]], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.endsWith(` ${name}`));
  if (!line) throw new Error(`no symbol ${name} in the ${mode} guest`);
  return BigInt(`0x${line.split(' ')[0]}`);
}

/** The address of the first instruction whose objdump text contains `text`. */
export function instructionAddress(mode: GuestMode, text: string): bigint {
  const paths = buildGuests() as Record<GuestMode, string>;
  const line = execFileSync('objdump', ['-d', paths[mode]], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.includes(text));
  if (!line) throw new Error(`no instruction like ${text} in the ${mode} guest`);
  return BigInt(`0x${line.trim().split(':')[0]}`);
}
