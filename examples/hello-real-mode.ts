// A real-mode guest that prints a greeting to port 0xE9 and halts.
// Run: npm run example  (needs a usable /dev/kvm; without one: node sandbox/cli.mjs -- npm run example)
import { GUEST_CODE, realModeGuest } from 'node-kvm';

/** Where the guest's code is loaded (guest-physical). */
export const LOAD_ADDR = GUEST_CODE;
/** The port the guest writes to: Bochs/QEMU's debug console. */
export const DEBUG_PORT = 0xe9;
export const GREETING = 'Hello from a KVM guest!\n';

/** The guest: 16-bit code, then the NUL-terminated greeting at LOAD_ADDR + 0x10. */
export function helloGuest(): Uint8Array {
  const code = [
    0xba, 0xe9, 0x00, //       mov  dx, 0xe9
    0xbe, 0x10, 0x10, //       mov  si, 0x1010      ; the greeting
    0xac, //             next: lodsb                ; al = [ds:si++]
    0x84, 0xc0, //             test al, al
    0x74, 0x03, //             jz   done
    0xee, //                   out  dx, al
    0xeb, 0xf8, //             jmp  next
    0xf4, //             done: hlt
  ];
  const bytes = new Uint8Array(0x10 + GREETING.length + 1);
  bytes.set(code);
  bytes.set(new TextEncoder().encode(GREETING), 0x10);
  return bytes;
}

/** Runs the guest to its `hlt`; returns what it printed and how it ended. */
export function runHello(): { output: string; exits: string[]; rip: bigint; rsi: bigint } {
  // A real-mode vCPU at LOAD_ADDR over 64 KiB of RAM; `using` closes it all.
  using guest = realModeGuest(helloGuest());
  const { vcpu } = guest;

  let output = '';
  const exits: string[] = [];
  for (;;) {
    const exit = vcpu.run();
    exits.push(exit.reason);
    if (exit.reason === 'io' && exit.direction === 'out' && exit.port === DEBUG_PORT) {
      output += String.fromCharCode(...exit.data);
    } else if (exit.reason === 'hlt') {
      const { rip, rsi } = vcpu.getRegs();
      return { output, exits, rip, rsi };
    } else if (exit.reason !== 'intr') {
      throw new Error(`unexpected exit: ${JSON.stringify(exit, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
    }
  }
}

if (require.main === module) {
  try {
    const { output, exits } = runHello();
    process.stdout.write(output);
    console.log(`(${exits.length} exits: ${exits.filter((e) => e === 'io').length} io, then ${exits.at(-1)})`);
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 1;
  }
}
