import assert from 'node:assert/strict'
import { join, resolve } from 'node:path'
import { test } from 'node:test'
import type { RecordingId } from '@conclave/protocol'
import { blobServiceUrl, listRecordingFiles, localFilePath, recorderOutputFor } from './recording-output.js'

const id = 'rec-abc' as RecordingId

test('a local file name that would leave the recording folder has no path', () => {
  const output = { kind: 'local', dir: '/srv/recordings' } as const
  assert.equal(localFilePath(output, id, 'hls/segment_00001.ts'), join('/srv/recordings', id, 'hls/segment_00001.ts'))
  for (const name of ['../rec-other/recording.mp4', '../../etc/passwd', '/etc/passwd', '', '.', 'a\0b']) {
    assert.equal(localFilePath(output, id, name), undefined, JSON.stringify(name))
  }
})

test('the recorder is given the folder or prefix it puts each recording under', () => {
  assert.deepEqual(recorderOutputFor({ kind: 'local', dir: 'recs' }), { kind: 'local', dir: resolve('recs') })
  assert.deepEqual(recorderOutputFor({ kind: 'azure', connectionString: 'c', container: 'box', prefix: 'p' }), { kind: 'azure', connectionString: 'c', container: 'box', prefix: 'p' })
})

test('Azure recordings link to blob URLs of the files their index names', async () => {
  const output = { kind: 'azure', connectionString: 'DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=secret;EndpointSuffix=core.windows.net', container: 'recordings', prefix: 'meetings/' } as const
  const index = { files: [{ name: 'recording.mp4' }, { name: 'hls/segment 1.ts' }, { name: '../escape.mp4' }] }
  assert.deepEqual(await listRecordingFiles(output, id, index), [
    { name: 'recording.mp4', url: 'https://acme.blob.core.windows.net/recordings/meetings/rec-abc/recording.mp4' },
    { name: 'hls/segment 1.ts', url: 'https://acme.blob.core.windows.net/recordings/meetings/rec-abc/hls/segment%201.ts' },
    { name: 'recording.json', url: 'https://acme.blob.core.windows.net/recordings/meetings/rec-abc/recording.json' },
  ])
  assert.deepEqual(await listRecordingFiles(output, id, undefined), [])
})

test('the blob endpoint comes from BlobEndpoint (Azurite) or the account name', () => {
  assert.equal(blobServiceUrl('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;'), 'http://127.0.0.1:10000/devstoreaccount1')
  assert.equal(blobServiceUrl('AccountName=acme;AccountKey=k'), 'https://acme.blob.core.windows.net')
  assert.throws(() => blobServiceUrl('AccountKey=k'), /AccountName/)
})
