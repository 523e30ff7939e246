// The layering of lib/ (ARCHITECTURE.md): core <- guest <- inspect, each
// importing only the layers before it. `npm run check:layers` (and npm test)
// fail on a violation.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'core-imports-above',
      comment: 'lib/core is the bridge to the kernel: it must not import lib/guest or lib/inspect',
      severity: 'error',
      from: { path: '^lib/core/' },
      to: { path: '^lib/(guest|inspect)/' },
    },
    {
      name: 'guest-imports-inspect',
      comment: 'lib/guest builds and runs guests: it must not import lib/inspect',
      severity: 'error',
      from: { path: '^lib/guest/' },
      to: { path: '^lib/inspect/' },
    },
    {
      name: 'layer-imports-index',
      comment: 'only users import lib/index.ts; the layers import each other directly',
      severity: 'error',
      from: { path: '^lib/(core|guest|inspect)/' },
      to: { path: '^lib/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
