// The shape of the house, checked by `npm run deps` (part of `npm test`): no import cycles, a hub
// folder reaches another only through its index.ts, the top of the hub (the composition root,
// main, config) is imported by no folder, and a workspace reaches another by its package name,
// never by a relative path into its src/.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'Arrows run one way: a cycle ties two modules into one that cannot be understood or tested alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'folder-through-index',
      severity: 'error',
      comment: "A hub folder exposes what others use through its index.ts; the rest is that folder's own business.",
      from: { path: '^hub/src/([^/]+)/' },
      to: { path: '^hub/src/[^/]+/', pathNot: ['^hub/src/$1/', '^hub/src/[^/]+/index\\.ts$'] },
    },
    {
      name: 'top-through-index',
      severity: 'error',
      comment: 'The composition root, main and the package index wire folders through their index.ts too.',
      from: { path: '^hub/src/[^/]+\\.ts$' },
      to: { path: '^hub/src/[^/]+/', pathNot: '^hub/src/[^/]+/index\\.ts$' },
    },
    {
      name: 'no-upward',
      severity: 'error',
      comment:
        'Folders sit below the top of the hub: they may use errors, logger and validate, never the composition root, main, config or the package index (pass what they need as options).',
      from: { path: '^hub/src/[^/]+/' },
      to: { path: '^hub/src/(hub|main|config|index)\\.ts$' },
    },
    {
      name: 'workspace-by-name',
      severity: 'error',
      comment: 'Import another workspace by its package name (its public API), never by a relative path into its sources.',
      from: { path: '^([^/]+)/' },
      to: { path: '^(device-sdk|bridge|hub|firmware-sim)/src/', pathNot: '^$1/', dependencyTypesNot: ['aliased'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['source', 'import', 'types', 'default'] },
  },
}
