// Snapshots a running guest and restores it into a second VM: both go on
// from the same point and print the same rest of the count.
//   npx tsx examples/snapshot.ts
import { Vm, realModeGuest, type Vcpu } from 'node-kvm';

// Real mode: prints '0'..'9' on port 0xE9, one character per exit, then halts.
//   xor cx, cx; next: mov ax, cx; add al, '0'; out 0xe9, al; inc cx; cmp cx, 10; jne next; hlt
export const COUNTER = [0x31, 0xc9, 0x89, 0xc8, 0x04, 0x30, 0xe6, 0xe9, 0x41, 0x83, 0xf9, 0x0a, 0x75, 0xf4, 0xf4];

/** Runs to `hlt`, collecting what the guest printed; stops early after `limit` characters. */
export function runCounter(vcpu: Vcpu, limit = Infinity): string {
  let out = '';
  for (;;) {
    if (out.length >= limit) return out;
    const exit = vcpu.run();
    if (exit.reason === 'hlt') return out;
    if (exit.reason === 'io' && exit.port === 0xe9) out += String.fromCharCode(exit.value);
    else if (exit.reason !== 'intr') throw new Error(`unexpected exit ${exit.reason}`);
  }
}

/** The demo: returns what each VM printed and their final registers. */
export function snapshotDemo(): { before: string; original: string; restored: string; sameRegs: boolean; json: number } {
  using guest = realModeGuest(COUNTER);
  const before = runCounter(guest.vcpu, 4); // "0123", then snapshot mid-run
  const { description, memory } = guest.vm.snapshot();
  // The description is plain data: it survives JSON (to a file, over a socket...).
  const json = JSON.stringify(description);
  const original = runCounter(guest.vcpu);
  using copy = Vm.restore(guest.kvm, { description: JSON.parse(json), memory });
  const restored = runCounter(copy.vcpus[0]!);
  const a = guest.vcpu.getRegs();
  const b = copy.vcpus[0]!.getRegs();
  const sameRegs = a.rip === b.rip && a.rax === b.rax && a.rcx === b.rcx && a.rflags === b.rflags;
  return { before, original, restored, sameRegs, json: json.length };
}

if (require.main === module) {
  try {
    const r = snapshotDemo();
    console.log(`printed before the snapshot:   ${r.before}`);
    console.log(`the original VM went on with:  ${r.original}`);
    console.log(`the restored VM went on with:  ${r.restored}`);
    console.log(`same final registers: ${r.sameRegs}; the snapshot's description is ${r.json} bytes of JSON`);
    process.exitCode = r.original === r.restored && r.sameRegs ? 0 : 1;
  } catch (e) {
    console.error((e as Error).message);
    console.error('This example needs a usable /dev/kvm; without one: node sandbox/cli.mjs -- npx tsx examples/snapshot.ts');
    process.exitCode = 1;
  }
}
