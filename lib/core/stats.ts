// KVM's binary statistics (KVM_GET_STATS_FD), decoded by their descriptors.
import { closeSync, readSync } from 'node:fs';
import { constants } from 'node:os';
import { KvmError } from './errors';
import { invalidArgValue, validateInteger, validateString } from './validate';

/** How a statistic behaves over time (`KVM_STATS_TYPE_*`). */
export type StatType = 'cumulative' | 'instant' | 'peak' | 'linear_hist' | 'log_hist' | 'unknown';
/** The statistic's unit (`KVM_STATS_UNIT_*`). */
export type StatUnit = 'none' | 'bytes' | 'seconds' | 'cycles' | 'boolean' | 'unknown';

/** One statistic's descriptor, as the kernel describes it. */
export interface StatDescriptor {
  name: string;
  type: StatType;
  unit: StatUnit;
  /** Values are value * base^exponent (base 10 or 2). */
  base: 10 | 2;
  exponent: number;
  /** How many u64 values (more than 1 for histograms). */
  size: number;
  /** Bucket width of a linear histogram. */
  bucketSize: number;
  offset: number;
}

const TYPES: StatType[] = ['cumulative', 'instant', 'peak', 'linear_hist', 'log_hist'];
const UNITS: StatUnit[] = ['none', 'bytes', 'seconds', 'cycles', 'boolean'];

/**
 * An open stats fd of a VM or vCPU. `read()` gives the current values;
 * descriptors are read once. Close it (or `using`) when done.
 */
export class KvmStats {
  /** The statistics' identifier, e.g. `kvm-1234/vcpu-0`. */
  readonly id: string;
  readonly descriptors: readonly StatDescriptor[];
  #fd: number;
  readonly #dataOffset: number;
  readonly #dataSize: number;

  /** @internal Takes ownership of `fd`. */
  constructor(fd: number) {
    this.#fd = validateInteger(fd, 'fd', 0, 0x7fffffff);
    try {
      const header = Buffer.alloc(24);
      sys(() => readSync(fd, header, 0, 24, 0));
      const nameSize = header.readUInt32LE(4);
      const numDesc = header.readUInt32LE(8);
      const idOffset = header.readUInt32LE(12);
      const descOffset = header.readUInt32LE(16);
      this.#dataOffset = header.readUInt32LE(20);
      const id = Buffer.alloc(nameSize);
      sys(() => readSync(fd, id, 0, nameSize, idOffset));
      this.id = cString(id);
      const descBytes = 16 + nameSize;
      const desc = Buffer.alloc(numDesc * descBytes);
      sys(() => readSync(fd, desc, 0, desc.length, descOffset));
      const list: StatDescriptor[] = [];
      for (let i = 0; i < numDesc; i++) {
        const o = i * descBytes;
        const flags = desc.readUInt32LE(o);
        list.push({
          type: TYPES[flags & 0xf] ?? 'unknown',
          unit: UNITS[(flags >> 4) & 0xf] ?? 'unknown',
          base: ((flags >> 8) & 0xf) === 1 ? 2 : 10,
          exponent: desc.readInt16LE(o + 4),
          size: desc.readUInt16LE(o + 6),
          offset: desc.readUInt32LE(o + 8),
          bucketSize: desc.readUInt32LE(o + 12),
          name: cString(desc.subarray(o + 16, o + 16 + nameSize)),
        });
      }
      this.descriptors = list;
      this.#dataSize = Math.max(0, ...list.map((d) => d.offset + d.size * 8));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Every statistic's current value: a bigint, or a bigint[] for histograms. */
  read(): Map<string, bigint | bigint[]> {
    const data = Buffer.alloc(this.#dataSize);
    const fd = this.#fdOrThrow();
    sys(() => readSync(fd, data, 0, data.length, this.#dataOffset));
    const out = new Map<string, bigint | bigint[]>();
    for (const d of this.descriptors) {
      const values = Array.from({ length: d.size }, (_, i) => data.readBigUInt64LE(d.offset + i * 8));
      out.set(d.name, d.size === 1 ? values[0]! : values);
    }
    return out;
  }

  /** One scalar statistic, by name (`'pages_4k'`, `'exits'`...). */
  get(name: string): bigint {
    validateString(name, 'name');
    const v = this.read().get(name);
    if (typeof v !== 'bigint') throw invalidArgValue('name', name, `is not a scalar statistic of ${this.id}`);
    return v;
  }

  /** Closes the stats fd. Idempotent. */
  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }

  /** Same as {@link KvmStats.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #fdOrThrow(): number {
    if (this.#fd < 0) throw new KvmError(constants.errno.EBADF, 'read', 'these stats are closed');
    return this.#fd;
  }
}

// fs errors of the stats fd as KvmErrors, like the addon's syscall errors.
function sys<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (typeof err.errno === 'number' && typeof err.syscall === 'string') throw new KvmError(Math.abs(err.errno), err.syscall, 'KVM stats fd');
    throw e;
  }
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('latin1');
}
