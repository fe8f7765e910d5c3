// A RecordingSink on Azure Blob Storage (or Azurite): block blobs under `<prefix>/<recordingId>/`.

import { createReadStream } from 'node:fs'
import { type BlockBlobClient, type ContainerClient, BlobServiceClient, StorageRetryPolicyType } from '@azure/storage-blob'
import type { RecordingSink, StoredObject } from './recording-sink.js'

export interface AzureBlobSinkOptions {
  connectionString: string
  container: string
  /** Blob names start with this (then `/`). */
  prefix: string
  /** One try's time limit in ms. Default 30 000. */
  tryTimeoutMs?: number
}

/** Block ids must all have the same length within a blob: 8 digits cover Azure's 50 000-block limit. */
export function blockId(index: number): string {
  return Buffer.from(`block-${index.toString().padStart(8, '0')}`).toString('base64')
}

export class AzureBlobSink implements RecordingSink {
  readonly location: string
  readonly #container: ContainerClient
  readonly #prefix: string
  #containerReady = false

  constructor({ connectionString, container, prefix, tryTimeoutMs = 30_000 }: AzureBlobSinkOptions) {
    // RecordingUploader retries with its own backoff and spools meanwhile; the SDK must fail fast.
    const service = BlobServiceClient.fromConnectionString(connectionString, {
      retryOptions: { maxTries: 1, tryTimeoutInMs: tryTimeoutMs, retryPolicyType: StorageRetryPolicyType.FIXED },
    })
    this.#container = service.getContainerClient(container)
    this.#prefix = prefix.replace(/\/+$/, '')
    this.location = `${this.#container.url}/${this.#prefix}`
  }

  async put(name: string, body: Uint8Array, contentType: string): Promise<void> {
    await this.#blob(name).then((blob) => blob.uploadData(body, { blobHTTPHeaders: { blobContentType: contentType } }))
  }

  async putFile(name: string, path: string, contentType: string, length?: number): Promise<void> {
    const blob = await this.#blob(name)
    if (length === undefined) {
      await blob.uploadFile(path, { blobHTTPHeaders: { blobContentType: contentType } })
      return
    }
    const stream = length === 0 ? undefined : createReadStream(path, { end: length - 1 })
    if (stream === undefined) await blob.uploadData(new Uint8Array(), { blobHTTPHeaders: { blobContentType: contentType } })
    else await blob.uploadStream(stream, 4 * 1024 * 1024, 2, { blobHTTPHeaders: { blobContentType: contentType } })
  }

  async stageBlock(name: string, index: number, chunk: Uint8Array): Promise<void> {
    await (await this.#blob(name)).stageBlock(blockId(index), chunk, chunk.length)
  }

  async commitBlocks(name: string, count: number, contentType: string): Promise<void> {
    const ids = Array.from({ length: count }, (_, index) => blockId(index))
    await (await this.#blob(name)).commitBlockList(ids, { blobHTTPHeaders: { blobContentType: contentType } })
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    try {
      return await (await this.#blob(name)).downloadToBuffer()
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined
      throw error
    }
  }

  async list(): Promise<StoredObject[]> {
    const objects: StoredObject[] = []
    const start = `${this.#prefix}/`
    for await (const item of this.#container.listBlobsFlat({ prefix: start })) {
      objects.push({ name: item.name.slice(start.length), size: item.properties.contentLength ?? 0 })
    }
    return objects.sort((a, b) => a.name.localeCompare(b.name))
  }

  async #blob(name: string): Promise<BlockBlobClient> {
    if (!this.#containerReady) {
      await this.#container.createIfNotExists()
      this.#containerReady = true
    }
    return this.#container.getBlockBlobClient(`${this.#prefix}/${name}`)
  }
}
