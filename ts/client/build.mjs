// Bundles the browser pages into dist/public (served by @conclave/server) and copies static files.

import { cp, mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const outdir = here('./dist/public/')

await mkdir(outdir, { recursive: true })
await build({
  entryPoints: [here('./src/meeting-page.ts'), here('./src/whip-page.ts'), here('./src/whep-page.ts'), here('./src/recorder-page.ts')],
  outdir,
  bundle: true,
  format: 'esm',
  target: ['chrome120', 'firefox120', 'safari17'],
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
})
await cp(here('./static/'), outdir, { recursive: true })
