// Where recordings are written (a local folder or an Azure blob container), what the recorder is
// told about it, and the links to a recording's files.

import { readdir, stat } from 'node:fs/promises'
import { join, relative, resolve, sep } from 'node:path'
import type { RecordingFile, RecordingId } from '@conclave/protocol'

export type RecordingOutput =
  | { kind: 'local'; dir: string }
  | { kind: 'azure'; connectionString: string; container: string; prefix?: string }

/** The `output` of the recorder's config. The recorder puts each recording under `<dir or prefix>/<recordingId>/`. */
export function recorderOutputFor(output: RecordingOutput): Record<string, unknown> {
  if (output.kind === 'local') return { kind: 'local', dir: resolve(output.dir) }
  const { connectionString, container, prefix } = output
  return prefix === undefined ? { kind: 'azure', connectionString, container } : { kind: 'azure', connectionString, container, prefix }
}

export function localRecordingDir(output: RecordingOutput & { kind: 'local' }, recordingId: RecordingId): string {
  return join(resolve(output.dir), recordingId)
}

function blobPrefix(output: RecordingOutput & { kind: 'azure' }, recordingId: RecordingId): string {
  const prefix = output.prefix?.replace(/\/+$/, '')
  return prefix ? `${prefix}/${recordingId}/` : `${recordingId}/`
}

/** The local path of `name` inside the recording's folder; undefined when `name` would leave it. */
export function localFilePath(output: RecordingOutput & { kind: 'local' }, recordingId: RecordingId, name: string): string | undefined {
  const root = localRecordingDir(output, recordingId)
  const path = resolve(root, name)
  const inside = relative(root, path)
  if (inside === '' || inside.startsWith('..') || inside.startsWith(sep) || name.includes('\0')) return undefined
  return path
}

/**
 * The recording's files: for a local folder, what is on disk now (served under
 * `/v1/recordings/{id}/files/`); for Azure, the files its index names, as blob URLs.
 */
export async function listRecordingFiles(
  output: RecordingOutput,
  recordingId: RecordingId,
  index: Record<string, unknown> | undefined,
): Promise<RecordingFile[]> {
  if (output.kind === 'local') {
    const root = localRecordingDir(output, recordingId)
    const names = await walk(root).catch(() => [])
    const files: RecordingFile[] = []
    for (const name of names.sort()) {
      const size = await stat(join(root, name)).then((info) => info.size, () => undefined)
      const url = `/v1/recordings/${recordingId}/files/${name.split('/').map(encodeURIComponent).join('/')}`
      files.push(size === undefined ? { name, url } : { name, url, bytes: size })
    }
    return files
  }
  const base = blobServiceUrl(output.connectionString)
  const prefix = blobPrefix(output, recordingId)
  const names = index === undefined ? [] : fileNamesOf(index)
  if (!names.includes('recording.json') && index !== undefined) names.push('recording.json')
  return names.map((name) => ({
    name,
    url: `${base}/${encodeURIComponent(output.container)}/${`${prefix}${name}`.split('/').map(encodeURIComponent).join('/')}`,
  }))
}

/** Relative `/`-separated paths of every file under `root`. */
async function walk(root: string, under = ''): Promise<string[]> {
  const entries = await readdir(join(root, under), { withFileTypes: true })
  const names: string[] = []
  for (const entry of entries) {
    const name = under === '' ? entry.name : `${under}/${entry.name}`
    if (entry.isDirectory()) names.push(...(await walk(root, name)))
    else if (entry.isFile()) names.push(name)
  }
  return names
}

/**
 * The file names an index mentions: `files` (strings or `{ name | path }`) and `segments`,
 * `thumbnails` likewise. The index is the recorder's; this reads it leniently.
 */
function fileNamesOf(index: Record<string, unknown>): string[] {
  const names = new Set<string>()
  for (const key of ['files', 'segments', 'thumbnails', 'tracks']) {
    const list = index[key]
    if (!Array.isArray(list)) continue
    for (const item of list) {
      const name = typeof item === 'string' ? item : nameField(item)
      if (name !== undefined && !name.split('/').includes('..')) names.add(name)
    }
  }
  return [...names]
}

function nameField(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null) return undefined
  for (const key of ['name', 'path', 'file']) {
    const value = (item as Record<string, unknown>)[key]
    if (typeof value === 'string' && value !== '') return value
  }
  return undefined
}

/** The blob service endpoint of an Azure Storage connection string (`BlobEndpoint`, or the account's default). */
export function blobServiceUrl(connectionString: string): string {
  const fields = new Map<string, string>()
  for (const part of connectionString.split(';')) {
    const at = part.indexOf('=')
    if (at > 0) fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim())
  }
  const endpoint = fields.get('blobendpoint')
  if (endpoint) return endpoint.replace(/\/+$/, '')
  const account = fields.get('accountname')
  if (!account) throw new Error('the Azure connection string has neither BlobEndpoint nor AccountName')
  const protocol = fields.get('defaultendpointsprotocol') ?? 'https'
  const suffix = fields.get('endpointsuffix') ?? 'core.windows.net'
  return `${protocol}://${account}.blob.${suffix}`
}
