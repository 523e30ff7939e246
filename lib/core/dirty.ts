import { outOfRange, validateInteger, validateLength, validateU32, validateU64, validateUint8Array } from './validate';

/** A slot's dirty bitmap: bit i set means page `baseGfn + i` was written. */
export class DirtyLog {
  /** Slot id. */
  readonly slot: number;
  readonly baseGfn: bigint;
  readonly npages: number;
  /** The bitmap as KVM wrote it: little-endian 64-bit words, bit i = page i. */
  readonly bitmap: Uint8Array;

  /** @internal */
  constructor(slot: number, baseGfn: bigint, npages: number, bitmap: Uint8Array) {
    this.slot = validateU32(slot, 'slot');
    this.baseGfn = validateU64(baseGfn, 'baseGfn');
    this.npages = validateLength(npages, 'npages');
    this.bitmap = validateUint8Array(bitmap, 'bitmap');
    const need = DirtyLog.bytesFor(npages);
    if (bitmap.length < need) throw outOfRange('bitmap.length', `>= ${need} for ${npages} pages`, bitmap.length);
  }

  /** Bytes KVM needs for a slot of `npages` pages: whole 64-bit words. */
  static bytesFor(npages: number): number {
    validateLength(npages, 'npages');
    return Math.ceil(npages / 64) * 8;
  }

  /** Whether page `i` of the slot is dirty. */
  isDirty(i: number): boolean {
    validateInteger(i, 'i', 0, this.npages - 1);
    return ((this.bitmap[i >> 3] ?? 0) >> (i & 7)) & 1 ? true : false;
  }

  /** The dirty pages' indexes in the slot, ascending. */
  pages(): number[] {
    const out: number[] = [];
    for (let byte = 0; byte < this.bitmap.length; byte++) {
      const b = this.bitmap[byte]!;
      if (b === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (b & (1 << bit) && byte * 8 + bit < this.npages) out.push(byte * 8 + bit);
    }
    return out;
  }

  /** The dirty pages' guest frame numbers. */
  gfns(): bigint[] {
    return this.pages().map((p) => this.baseGfn + BigInt(p));
  }
}
