// Where each integration test file runs: pure decisions, unit-tested in
// test/unit/plan.test.ts, carried out by scripts/test.mjs.

/** Reads a file's first-line tag: `// kvm-test: smoke needs=tdp,tdp_mmu`. */
export function parseTag(file, text) {
  const head = text.split('\n', 1)[0] ?? '';
  const tag = /^\/\/\s*kvm-test:\s*(.*)$/.exec(head)?.[1] ?? '';
  return {
    file,
    smoke: /\bsmoke\b/.test(tag),
    needs: /needs=([\w,]+)/.exec(tag)?.[1]?.split(',') ?? [],
    // Counted only to report the tests of files that no KVM here can run.
    tests: (text.match(/^\s*it\(/gm) ?? []).length,
  };
}

/**
 * What a KVM offers, by the names files use in `needs=`. PVM runs paging
 * only in long mode: 32-bit and PAE paging shut its guests down. Hardware
 * and software breakpoints are tried out by probeKvm(); MMU tracing needs root and tracefs.
 * Booting Linux (examples/linux) needs VT-x or AMD-V: the sandbox, or such a host.
 */
export function features(probe) {
  return {
    tdp: probe.tdp,
    tdp_mmu: probe.tdpMmu,
    paging32: probe.vendorModule !== 'kvm_pvm',
    hw_breakpoints: probe.hwBreakpoints === true,
    sw_breakpoints: probe.swBreakpoints === true,
    mmu_trace: probe.mmuTrace === true,
    legacy_mmu: probe.tdp && !probe.tdpMmu,
    // A stock kernel needs hardware-assisted KVM: PVM emulates all CPL0 code.
    boots_linux: probe.vendorModule === 'kvm_intel' || probe.vendorModule === 'kvm_amd',
  };
}

/**
 * Extra sandboxes, booted with other module parameters, for files whose
 * needs the default sandbox does not meet. Each lists what it provides.
 */
export const SANDBOX_PROFILES = [
  { name: 'legacy MMU', moduleParams: { kvm: { tdp_mmu: 0 } }, provides: ['legacy_mmu'] },
];

/** The profile that serves a file, if one does. */
export function profileFor(file) {
  return SANDBOX_PROFILES.find((p) => file.needs.some((n) => p.provides.includes(n)));
}

/** The needs of `file` that a KVM with `feats` lacks. */
export function lacks(file, feats) {
  return file.needs.filter((n) => !feats[n]);
}

/**
 * Splits the files between the host's KVM and the sandbox.
 * target: 'host' | 'sandbox' | 'both'. Returns the files for each place
 * (null: not run there), the files for each extra sandbox profile, and,
 * when the host was required but unusable, why.
 */
export function plan(target, hostProbe, files) {
  const hostUsable = target !== 'sandbox' && hostProbe.usable;
  const host = hostUsable ? files.filter((f) => lacks(f, features(hostProbe)).length === 0) : null;
  let sandbox = null;
  if (target !== 'host') {
    // Beside a usable host KVM: what the host lacks, plus the smoke set so that the sandbox never rots.
    sandbox = hostUsable ? files.filter((f) => f.smoke || lacks(f, features(hostProbe)).length > 0) : files;
  }
  // Files for a profile go to its own sandbox instead of the default one.
  const profiles = [];
  if (sandbox) {
    for (const p of SANDBOX_PROFILES) {
      const mine = sandbox.filter((f) => profileFor(f) === p);
      if (mine.length) profiles.push({ profile: p, files: mine });
    }
    sandbox = sandbox.filter((f) => !profileFor(f));
  }
  const hostError = target === 'host' && !hostProbe.usable ? `no usable /dev/kvm: ${hostProbe.reason}` : undefined;
  return { host, sandbox, profiles, hostError };
}
