// Picks the sink for an output configuration, scoped to one recording.

import { join } from 'node:path'
import type { OutputConfig } from '../config.js'
import { AzureBlobSink } from './azure-blob-sink.js'
import { LocalFolderSink } from './local-folder-sink.js'
import type { RecordingSink } from './recording-sink.js'

export function createRecordingSink(output: OutputConfig, recordingId: string): RecordingSink {
  if (output.kind === 'local') return new LocalFolderSink(join(output.dir, recordingId))
  const prefix = output.prefix ? `${output.prefix.replace(/\/+$/, '')}/${recordingId}` : recordingId
  return new AzureBlobSink({ connectionString: output.connectionString, container: output.container, prefix })
}
