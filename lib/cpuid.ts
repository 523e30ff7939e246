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
