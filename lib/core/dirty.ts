import { outOfRange, validateInstance, validateInteger, validateLength, validateU32, validateU64, validateUint8Array } from './validate';

/** @internal Passed by code that built a DirtyLog's arguments itself. */
export const CHECKED: unique symbol = Symbol('checked');

/** @internal Bytes of a bitmap for `npages` pages: whole 64-bit words (unchecked). */
export const bitmapBytes = (npages: number): number => Math.ceil(npages / 64) * 8;

/** A slot's dirty bitmap: bit i set means page `baseGfn + i` was written. */
export class DirtyLog {
  /** Slot id. */
  readonly slot: number;
  readonly baseGfn: bigint;
  readonly npages: number;
  /** The bitmap as KVM wrote it: little-endian 64-bit words, bit i = page i. */
  readonly bitmap: Uint8Array;

  /** @internal */
  constructor(slot: number, baseGfn: bigint, npages: number, bitmap: Uint8Array, checked?: typeof CHECKED) {
    if (checked === CHECKED) {
      // From MemorySlot.getDirtyLog(): its own, right-sized values (a dirty
      // log is read in a loop; the checks cost as much as the ioctl's wrapper).
      this.slot = slot;
      this.baseGfn = baseGfn;
      this.npages = npages;
      this.bitmap = bitmap;
      return;
    }
    this.slot = validateU32(slot, 'slot');
    this.baseGfn = validateU64(baseGfn, 'baseGfn');
    this.npages = validateLength(npages, 'npages');
    this.bitmap = validateUint8Array(bitmap, 'bitmap');
    const need = DirtyLog.bytesFor(npages);
    if (bitmap.length < need) throw outOfRange('bitmap.length', `>= ${need} for ${npages} pages`, bitmap.length);
  }

  /** Bytes KVM needs for a slot of `npages` pages: whole 64-bit words. */
  static bytesFor(npages: number): number {
    return bitmapBytes(validateLength(npages, 'npages'));
  }

  /** Whether page `i` of the slot is dirty. */
  isDirty(i: number): boolean {
    validateInteger(i, 'i', 0, this.npages - 1);
    return ((this.bitmap[i >> 3] ?? 0) >> (i & 7)) & 1 ? true : false;
  }

  /** The dirty pages' indexes in the slot, ascending. */
  pages(): number[] {
    const out: number[] = [];
    this.#scan((p) => {
      out.push(p);
      return true;
    });
    return out;
  }

  /**
   * Writes the dirty pages' indexes into `out` (ascending), allocating
   * nothing; returns how many there are. When `out` is too short it holds
   * the first `out.length` and the return value says how many it needed.
   */
  pagesInto(out: Uint32Array): number {
    validateInstance(out, 'out', Uint32Array);
    let n = 0;
    this.#scan((p) => {
      if (n < out.length) out[n] = p;
      n++;
      return true;
    });
    return n;
  }

  // Calls `visit` for each dirty page; 32 bits at a time, skipping clean words.
  #scan(visit: (page: number) => boolean): void {
    const b = this.bitmap;
    const words = Math.floor(b.byteLength / 4);
    const w32 = b.byteOffset % 4 === 0 ? new Uint32Array(b.buffer, b.byteOffset, words) : undefined;
    for (let w = 0; w < words; w++) {
      let bits = w32 ? w32[w]! : (b[4 * w]! | (b[4 * w + 1]! << 8) | (b[4 * w + 2]! << 16) | (b[4 * w + 3]! << 24)) >>> 0;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        const page = w * 32 + bit;
        if (page >= this.npages) return;
        visit(page);
        bits &= bits - 1;
      }
    }
    for (let byte = words * 4; byte < b.length; byte++) {
      for (let bit = 0; bit < 8; bit++) if (b[byte]! & (1 << bit) && byte * 8 + bit < this.npages) visit(byte * 8 + bit);
    }
  }

  /** The dirty pages' guest frame numbers. */
  gfns(): bigint[] {
    return this.pages().map((p) => this.baseGfn + BigInt(p));
  }
}
