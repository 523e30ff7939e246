// The guests of `npm run bench`, in one place: node-kvm loads them with
// realModeGuest(), the C baselines get the same bytes in hex on their
// command line. Real mode, code at 0x1000, 64 KiB of RAM at 0, rcx = N.

/** Where an MMIO store lands: ds = 0xd000, far above the 64 KiB of RAM. */
export const MMIO_BASE = 0xd0000;
/** The port every `out` of these guests writes. */
export const PORT = 0x80;

export const GUESTS = {
  // 1: out 0x80, al; dec ecx; jnz 1b; hlt
  ioLoop: [0xe6, PORT, 0x66, 0x49, 0x75, 0xfa, 0xf4],
  // mov ax, 0xd000; mov ds, ax; xor bx, bx
  // 1: mov [bx], bl; inc bx; dec ecx; jnz 1b; hlt
  // Store i to MMIO_BASE + (i & 0xffff), byte i & 0xff: a check per write.
  mmioBurst: [0xb8, 0x00, 0xd0, 0x8e, 0xd8, 0x31, 0xdb, 0x88, 0x1f, 0x43, 0x66, 0x49, 0x75, 0xf9, 0xf4],
  // hlt
  hlt: [0xf4],
};

export const hex = (code) => Buffer.from(code).toString('hex');
