// Builds the console into console/dist: one hashed script, one hashed style sheet and index.html.
// Run by the root `npm run build` (so by `npm start`, `npm test` and `prepare`).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')

const result = await build({
  entryPoints: [join(root, 'src/main.tsx')],
  outdir: dist,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome105', 'firefox110', 'safari16'],
  // Hashed names may be cached for a year: a new build is a new name (index.html is never cached).
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  // Sibling workspaces are bundled from their TypeScript sources, so the console never sees a stale build.
  conditions: ['source'],
  legalComments: 'none',
  metafile: true,
  write: false,
  logLevel: 'warning',
})

rmSync(dist, { recursive: true, force: true })
mkdirSync(dist, { recursive: true })
let script = ''
let style = ''
for (const file of result.outputFiles) {
  writeFileSync(file.path, file.contents)
  if (file.path.endsWith('.js')) script = basename(file.path)
  if (file.path.endsWith('.css')) style = basename(file.path)
}
if (script === '' || style === '') throw new Error('esbuild wrote no script or no style sheet')

// Relative URLs: the page lives at /console/. The empty data: icon spares a request the hub would answer 404.
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Fleetgate console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="./${style}">
<script type="module" src="./${script}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The Fleetgate console needs JavaScript.</noscript>
</body>
</html>
`
writeFileSync(join(dist, 'index.html'), html)
