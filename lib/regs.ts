/** General-purpose registers (`struct kvm_regs`); 64-bit values are bigints. */
export interface Regs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** What {@link Vcpu.setRegs} accepts: any subset, as bigint or safe integer. */
export type RegsInput = { [K in keyof Regs]?: bigint | number };

/** A segment register (`struct kvm_segment`): hidden part included. */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** Descriptor type (bits 8-11 of the access byte). */
  type: number;
  present: number;
  dpl: number;
  /** Default operation size: 1 for 32-bit segments. */
  db: number;
  /** 1 for a code/data segment, 0 for a system one. */
  s: number;
  /** 1 for a 64-bit code segment. */
  l: number;
  /** Granularity: 1 when the limit counts 4 KiB units. */
  g: number;
  avl: number;
  unusable: number;
}

/** A descriptor table register (GDTR/IDTR, `struct kvm_dtable`). */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** Special registers (`struct kvm_sregs`). */
export interface Sregs {
  cs: Segment; ds: Segment; es: Segment; fs: Segment; gs: Segment; ss: Segment;
  tr: Segment; ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupts, 256 bits. */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

type Numeric<T> = { [K in keyof T]?: T[K] extends bigint ? bigint | number : T[K] };

/**
 * What {@link Vcpu.setSregs} accepts: any subset, down to single segment
 * fields; what is left out keeps its current value.
 */
export type SregsInput = {
  [K in keyof Sregs]?: Sregs[K] extends Segment | DescriptorTable ? Numeric<Sregs[K]> : Sregs[K] | number;
};
