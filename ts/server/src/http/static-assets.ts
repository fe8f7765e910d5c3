// The bundled browser client (meeting page, WHIP/WHEP pages), read once into memory and served as is.

import { readFile, readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { extname, join, relative, sep } from 'node:path'

export interface StaticAsset {
  body: Uint8Array
  contentType: string
}

/** Assets by URL path (`/index.html`, `/app.js`). */
export type StaticAssets = ReadonlyMap<string, StaticAsset>

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
}

/** Where `npm run build` puts the client bundle: `@conclave/client`'s `dist/public`. */
export function clientAssetsDir(): string {
  return fileURLToPath(new URL('./dist/public/', import.meta.resolve('@conclave/client/package.json')))
}

/** Reads every file under `dir`; an absent directory gives no assets (the page says to build). */
export async function loadStaticAssets(dir: string): Promise<StaticAssets> {
  const assets = new Map<string, StaticAsset>()
  let entries: string[]
  try {
    entries = await readdir(dir, { recursive: true })
  } catch {
    return assets
  }
  for (const entry of entries) {
    const path = join(dir, entry)
    let body: Uint8Array
    try {
      body = await readFile(path)
    } catch {
      continue // a directory
    }
    const urlPath = '/' + relative(dir, path).split(sep).join('/')
    assets.set(urlPath, { body, contentType: CONTENT_TYPES[extname(path)] ?? 'application/octet-stream' })
  }
  return assets
}
