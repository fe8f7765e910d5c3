#!/usr/bin/env node
// The recorder process: reads CONCLAVE_RECORDER_CONFIG (JSON), records until SIGTERM/SIGINT, and
// speaks JSON lines on stdout (started, progress, finalized, failed); logs go to stderr.
// Exit 0 after a clean stop; 1 when recording failed or ended partial; 2 when it could not start.

import { binariesFromEnv, resolveBinaries } from './binaries.js'
import { parseCompositeConfig } from './config.js'
import { RecorderError, toRecorderError } from './errors.js'

function emit(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} recorder: ${message}\n`)
}

async function main(): Promise<number> {
  const raw = process.env.CONCLAVE_RECORDER_CONFIG
  let input: unknown
  try {
    if (raw === undefined || raw === '') throw new Error('CONCLAVE_RECORDER_CONFIG is not set')
    input = JSON.parse(raw)
  } catch (error) {
    throw new RecorderError('invalid_config', `CONCLAVE_RECORDER_CONFIG must be JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  let stopRequested = false
  const earlyStop = () => (stopRequested = true)
  process.once('SIGTERM', earlyStop)
  process.once('SIGINT', earlyStop)
  // Refuse a bad configuration or a missing program before loading Chromium's driver and the storage SDK.
  const config = parseCompositeConfig(input)
  const binaries = await resolveBinaries(binariesFromEnv())
  const { startCompositeRecording } = await import('./composite-recording.js')
  const recording = await startCompositeRecording(config, { log, binaries })
  emit({ type: 'started', recordingId: recording.recordingId, at: recording.startedAt.toISOString() })
  recording.on('progress', ({ bytes, segments, uploadedBytes, storageFailures }) => emit({ type: 'progress', bytes, segments, uploadedBytes, storageFailures }))
  recording.on('crashed', (error) => log(`${error.code}: ${error.message}; finalizing what was recorded`))
  const stop = () => {
    log('stopping')
    void recording.stop()
  }
  process.off('SIGTERM', earlyStop)
  process.off('SIGINT', earlyStop)
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  if (stopRequested) stop()
  const result = await recording.finished
  emit({ type: 'finalized', recordingId: result.recordingId, partial: result.partial, index: result.index })
  if (result.error !== undefined) {
    emit({ type: 'failed', code: result.error.code, message: result.error.message })
    return 1
  }
  return 0
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const failure = toRecorderError(error)
    log(`${failure.code}: ${failure.message}`)
    emit({ type: 'failed', code: failure.code, message: failure.message })
    process.exit(2)
  },
)
