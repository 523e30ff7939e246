import { own, validateArray, validateObject, validateU32 } from './validate';

/** One CPUID leaf as KVM reports and takes it (`struct kvm_cpuid_entry2`). */
export interface CpuidEntry {
  /** The leaf (EAX input). */
  function: number;
  /** The sub-leaf (ECX input), when `flags` says it matters. */
  index: number;
  /** `KVM_CPUID_FLAG_*`. */
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const CPUID_KEYS = ['function', 'index', 'flags', 'eax', 'ebx', 'ecx', 'edx'] as const;

/** @internal Checks CPUID entries (at most KVM's 256) and returns clean copies. */
export function validateCpuid(entries: unknown, name = 'entries'): CpuidEntry[] {
  return validateArray(entries, name, 256).map((e, i) => {
    const o = validateObject(e, `${name}[${i}]`, CPUID_KEYS);
    const out = {} as CpuidEntry;
    for (const k of CPUID_KEYS) out[k] = validateU32(own(o, k), `${name}[${i}].${k}`);
    return out;
  });
}
