// A RecordingSink on the local disk: `<dir>/<recordingId>/<name>`. Used when no storage is configured.

import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { RecordingSink, StoredObject } from './recording-sink.js'

export class LocalFolderSink implements RecordingSink {
  readonly location: string
  /** Where each staged block ends, by object: blocks are written in place as they come. */
  readonly #blockEnds = new Map<string, number[]>()

  constructor(root: string) {
    this.location = root
  }

  async put(name: string, body: Uint8Array): Promise<void> {
    const path = await this.#prepare(name)
    // Readers never see half an object: write beside it, then rename over it.
    await writeFile(`${path}.tmp`, body)
    await rename(`${path}.tmp`, path)
  }

  async putFile(name: string, source: string, _contentType: string, length?: number): Promise<void> {
    const path = await this.#prepare(name)
    const end = length === undefined ? undefined : length - 1
    if (end !== undefined && end < 0) await writeFile(`${path}.tmp`, new Uint8Array())
    else await pipeline(createReadStream(source, end === undefined ? {} : { end }), createWriteStream(`${path}.tmp`))
    await rename(`${path}.tmp`, path)
  }

  /** Staged blocks land in the file at once: on a local disk there is nothing to gain by waiting. */
  async stageBlock(name: string, index: number, chunk: Uint8Array): Promise<void> {
    const path = await this.#prepare(name)
    const ends = this.#blockEnds.get(name) ?? []
    this.#blockEnds.set(name, ends)
    if (index > ends.length) throw new Error(`block ${index} of ${name} staged before block ${ends.length}`)
    const position = index === 0 ? 0 : (ends[index - 1] ?? 0)
    const file = await open(path, index === 0 ? 'w' : 'r+')
    try {
      await file.write(chunk, 0, chunk.length, position)
      await file.truncate(position + chunk.length)
    } finally {
      await file.close()
    }
    ends[index] = position + chunk.length
    ends.length = index + 1
  }

  async commitBlocks(name: string, count: number): Promise<void> {
    if (count === 0) return this.put(name, new Uint8Array())
    const ends = this.#blockEnds.get(name) ?? []
    const end = ends[count - 1]
    if (end === undefined) throw new Error(`${name} has ${ends.length} staged blocks, not ${count}`)
    const file = await open(join(this.location, name), 'r+')
    try {
      await file.truncate(end)
      await file.sync()
    } finally {
      await file.close()
    }
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(join(this.location, name))
    } catch {
      return undefined
    }
  }

  async list(): Promise<StoredObject[]> {
    let entries: string[]
    try {
      entries = await readdir(this.location, { recursive: true })
    } catch {
      return []
    }
    const objects: StoredObject[] = []
    for (const entry of entries.sort()) {
      if (entry.endsWith('.tmp')) continue
      const path = join(this.location, entry)
      const info = await stat(path)
      if (info.isFile()) objects.push({ name: relative(this.location, path).split(sep).join('/'), size: info.size })
    }
    return objects
  }

  async #prepare(name: string): Promise<string> {
    const path = join(this.location, name)
    await mkdir(dirname(path), { recursive: true })
    return path
  }
}
