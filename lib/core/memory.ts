import { markAsUntransferable } from 'node:worker_threads';
import { binding, NativeMemory } from './binding';
import { constants } from 'node:os';
import { KvmError } from './errors';
import { constants as bufferConstants } from 'node:buffer';
import { invalidArgType, invalidArgValue, outOfRange, own, validateLength, validateOptions } from './validate';

/** Size of a page: KVM maps guest memory in whole pages. */
export const PAGE_SIZE: number = binding.constants.pageSize ?? 4096;

/** @internal `size`, checked to be a positive multiple of {@link PAGE_SIZE}. */
export function validatePages(size: unknown, name: string): number {
  const n = validateLength(size, name);
  if (n === 0 || n % PAGE_SIZE !== 0) throw outOfRange(name, `a positive multiple of ${PAGE_SIZE}`, n);
  return n;
}

/**
 * The most bytes one view of guest memory may span: the runtime's largest
 * `ArrayBuffer` (`buffer.constants.MAX_LENGTH`: 4 GiB on Node 20, more on
 * later lines). Larger memory is reached through {@link GuestMemory.view}.
 */
export const MAX_VIEW: number = bufferConstants.MAX_LENGTH;
binding.setMaxView(MAX_VIEW);

/** A `WebAssembly.Memory` (typed structurally: Node's types leave WebAssembly out). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(delta: number): number;
}

/** What {@link GuestMemory.from} accepts. */
export type GuestMemorySource = ArrayBuffer | SharedArrayBuffer | WasmMemory | ArrayBufferView;

const getter = (proto: object, name: string) => Object.getOwnPropertyDescriptor(proto, name)!.get!;
const TYPED = Object.getPrototypeOf(Uint8Array.prototype) as object;
const VIEW_GETTERS = ['buffer', 'byteOffset', 'byteLength'].map((n) => [getter(TYPED, n), getter(DataView.prototype, n)] as const);

/** A view's buffer, offset and length as its internal slots hold them (ArrayBuffer.isView already holds). */
function viewParts(v: ArrayBufferView): { buffer: ArrayBuffer | SharedArrayBuffer; byteOffset: number; byteLength: number } {
  const dataView = !(v instanceof Uint8Array) && isDataView(v);
  const [buffer, byteOffset, byteLength] = VIEW_GETTERS.map(([ta, dv]) => (dataView ? dv : ta).call(v) as unknown);
  return { buffer: buffer as ArrayBuffer | SharedArrayBuffer, byteOffset: byteOffset as number, byteLength: byteLength as number };
}

function isDataView(v: ArrayBufferView): boolean {
  try {
    VIEW_GETTERS[0]![1].call(v);
    return true;
  } catch {
    return false;
  }
}

const WasmMemoryClass = (globalThis as unknown as { WebAssembly?: { Memory: new (...a: never[]) => WasmMemory } })
  .WebAssembly?.Memory;

/** Options for {@link GuestMemory.allocate}. */
export interface AllocateOptions {
  /**
   * true: align to 2 MiB and ask for transparent huge pages
   * (`madvise(MADV_HUGEPAGE)`; the kernel may still use 4 KiB pages).
   * false: refuse them (`MADV_NOHUGEPAGE`), so that every page is 4 KiB.
   * `'hugetlb'`: 2 MiB pages from the hugetlbfs pool (`MAP_HUGETLB`); the
   * size must be a multiple of 2 MiB and the pages reserved
   * (`/proc/sys/vm/nr_hugepages`), or this throws `ENOMEM` saying so.
   * Default: whatever the system's THP setting gives.
   */
  hugePages?: boolean | 'hugetlb';
}

/**
 * Host memory that can back guest-physical memory, readable and writable
 * from JavaScript with no copies: the same bytes the guest sees.
 *
 * It stays alive while any slot maps it, whatever the garbage collector
 * does, and {@link GuestMemory.close} is refused until those slots are gone.
 */
export class GuestMemory {
  /** @internal */
  readonly native: NativeMemory;
  readonly #offset: number;
  // Kept here, not read through N-API each time: the size never changes,
  // and only close() closes. #whole: the addon-mapped buffer, once made
  // (a caller's WebAssembly.Memory changes buffers as it grows).
  readonly #size: number;
  readonly #mapped: boolean;
  #whole: ArrayBuffer | undefined;
  #closed = false;

  private constructor(native: NativeMemory, offset = 0, mapped = false, size = native.size) {
    this.native = native;
    this.#offset = offset;
    this.#size = size;
    this.#mapped = mapped;
  }

  /** Maps `size` bytes (a multiple of the page size) of zeroed anonymous memory. */
  static allocate(size: number, options: AllocateOptions = {}): GuestMemory {
    validatePages(size, 'size');
    const o = validateOptions(options, 'options', ['hugePages']);
    const hugePages = own(o, 'hugePages');
    if (hugePages !== undefined && typeof hugePages !== 'boolean' && hugePages !== 'hugetlb') {
      throw invalidArgType('options.hugePages', "of type boolean or 'hugetlb'", hugePages);
    }
    if (hugePages === 'hugetlb' && size % 0x200000 !== 0) throw outOfRange('size', 'a multiple of 2 MiB (2097152) for hugetlb pages', size);
    const thp = hugePages === 'hugetlb' ? 2 : hugePages === undefined ? -1 : hugePages ? 1 : 0;
    return new GuestMemory(NativeMemory.allocate(size, thp), 0, true, size);
  }

  /**
   * Uses memory the caller owns. It must start on a page boundary and be a
   * whole number of pages: `WebAssembly.Memory` buffers and large
   * `SharedArrayBuffer`s usually are; small `ArrayBuffer`s usually are not.
   * A plain `ArrayBuffer` is marked untransferable (`postMessage` and
   * `structuredClone` copy it instead of detaching it), so that it cannot
   * vanish under KVM; a `WebAssembly.Memory`'s buffer, which cannot be
   * detached, is not. A `WebAssembly.Memory` may grow in place.
   */
  static from(source: GuestMemorySource): GuestMemory {
    if (WasmMemoryClass !== undefined && source instanceof WasmMemoryClass) {
      const shared = source.buffer instanceof SharedArrayBuffer;
      return new GuestMemory(
        NativeMemory.borrow(shared ? 'wasm-shared' : 'wasm', source, new Uint8Array(source.buffer)),
      );
    }
    if (source instanceof SharedArrayBuffer) {
      return new GuestMemory(NativeMemory.borrow('shared', source, new Uint8Array(source)));
    }
    if (source instanceof ArrayBuffer) {
      if (source.byteLength === 0) throw invalidArgValue('source', source, 'is empty or detached');
      const native = NativeMemory.borrow('arraybuffer', source, new Uint8Array(source));
      // Not addon-mapped pages (the alias pins them) nor a WebAssembly.Memory's (never detachable).
      if (native.markable) markAsUntransferable(source);
      return new GuestMemory(native);
    }
    if (ArrayBuffer.isView(source)) {
      // Read once, through the intrinsic getters: an own `buffer` getter
      // on the view could name one buffer for the bytes and another for the kind.
      const { buffer, byteOffset, byteLength } = viewParts(source);
      const view = new Uint8Array(buffer, byteOffset, byteLength);
      if (buffer instanceof SharedArrayBuffer) {
        return new GuestMemory(NativeMemory.borrow('shared', buffer, view), byteOffset);
      }
      if (buffer.byteLength === 0) throw invalidArgValue('source', source, 'is a view of an empty or detached buffer');
      const native = NativeMemory.borrow('arraybuffer', buffer, view);
      if (native.markable) markAsUntransferable(buffer);
      return new GuestMemory(native, byteOffset);
    }
    throw invalidArgType('source', 'an instance of ArrayBuffer, SharedArrayBuffer, WebAssembly.Memory or an ArrayBufferView', source);
  }

  /**
   * The bytes, as the buffer that holds them (for a WebAssembly.Memory, its
   * current buffer). Memory larger than {@link MAX_VIEW} has no single
   * buffer: this throws `ERR_OUT_OF_RANGE`; use {@link GuestMemory.view}.
   */
  get buffer(): ArrayBuffer | SharedArrayBuffer {
    const b = this.#buffer();
    if (b !== undefined) return b;
    if (this.#closed) throw new KvmError(constants.errno.EBADF, 'GuestMemory.buffer', 'the memory is closed');
    throw outOfRange('memory.size', `<= ${MAX_VIEW} (buffer.constants.MAX_LENGTH) to be one buffer; use memory.view(offset, length)`, this.#size);
  }

  /** A byte view of exactly this memory (a sub-range of the buffer for views); see {@link GuestMemory.buffer} for its size limit. */
  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer, this.#offset, this.#size);
  }

  /**
   * A byte view of `[offset, offset + length)` of this memory, in place,
   * for memory of any size: at most {@link MAX_VIEW} bytes each. For memory
   * larger than one buffer each call maps a new window, which keeps the
   * pages alive until it is garbage-collected; keep the views you reuse.
   */
  view(offset: number, length: number): Uint8Array {
    validateLength(offset, 'offset');
    validateLength(length, 'length');
    const size = this.#size;
    if (this.#closed) throw new KvmError(constants.errno.EBADF, 'GuestMemory.view', 'the memory is closed');
    if (offset > size) throw outOfRange('offset', `<= ${size} (the memory's size)`, offset);
    if (length > size - offset) throw outOfRange('length', `<= ${size - offset} (the bytes after offset)`, length);
    if (length > MAX_VIEW) throw outOfRange('length', `<= ${MAX_VIEW} (buffer.constants.MAX_LENGTH)`, length);
    const whole = this.#buffer();
    if (whole !== undefined) return new Uint8Array(whole, this.#offset + offset, length);
    return length === 0 ? new Uint8Array(0) : new Uint8Array(this.native.view(offset, length));
  }

  /** Size in bytes (0 once closed). */
  get size(): number {
    return this.#closed ? 0 : this.#size;
  }

  /** Host virtual address of the first byte: what a slot's `userspaceAddr` starts from. */
  get address(): bigint {
    return this.native.address;
  }

  /** Who owns the pages: `'mapped'` (this library) or the caller's buffer kind. */
  get kind(): 'mapped' | 'arraybuffer' | 'shared' | 'wasm' {
    return this.native.kind;
  }

  /** How many memory slots map this memory now. */
  get slotCount(): number {
    return this.native.slotCount;
  }

  /** True after {@link GuestMemory.close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases the memory now rather than at garbage collection: the buffer
   * and every view are detached and, for memory the addon mapped, the pages
   * are given back at once (the address range follows when the event loop
   * next turns). A buffer moved out with `ArrayBuffer.prototype.transfer()`
   * is not detached; it reads zeros. Throws a `KvmError` with code `EBUSY`
   * while a slot maps it. Idempotent.
   */
  close(): void {
    this.native.close();
    this.#closed = true;
    this.#whole = undefined;
  }

  #buffer(): ArrayBuffer | SharedArrayBuffer | undefined {
    if (this.#whole !== undefined) return this.#whole;
    const b = this.native.buffer;
    if (this.#mapped) this.#whole = b as ArrayBuffer | undefined;
    return b;
  }

  /** Same as {@link GuestMemory.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
