// A stand-in recorder process for the tests of recorder SUPERVISION only (spawn, JSON lines,
// SIGTERM, crashes, kills). It records nothing: it writes a small file where the real recorder
// writes its output and speaks the recorder's stdout protocol. `argv[2]` picks how it behaves.
// The real recorder is tested end to end in test/browser/recording.test.ts.

import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

type Behaviour = 'normal' | 'crash' | 'orphan' | 'ignore-term' | 'fail' | 'malformed' | 'silent'

const behaviour = (process.argv[2] ?? 'normal') as Behaviour
const config = JSON.parse(process.env.CONCLAVE_RECORDER_CONFIG ?? '{}') as {
  recordingId: string
  room: string
  serverUrl: string
  token: string
  mode: string
  output: { kind: string; dir?: string }
}
// Where the real recorder writes too: `<dir>/<recordingId>/`.
const dir = join(config.output.dir ?? '.', config.recordingId)

function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

// Installed before `started`: from then on SIGTERM must finalize. A silent one dies of it instead.
process.on('SIGTERM', () => {
  if (behaviour === 'silent') process.exit(143)
  if (behaviour === 'ignore-term') {
    process.stderr.write('fake recorder: ignoring SIGTERM\n')
    return
  }
  const index = { recordingId: config.recordingId, room: config.room, segments: [{ name: 'segments/segment-000.bin' }] }
  writeFileSync(join(dir, 'recording.json'), JSON.stringify(index))
  say({ type: 'finalized', recordingId: config.recordingId, partial: false, index })
  process.exit(0)
})

mkdirSync(dir, { recursive: true })
// What it was given, for the tests to check (the token's claims, the server URL).
writeFileSync(join(dir, 'fake-config.json'), JSON.stringify(config))

if (behaviour === 'fail') {
  say({ type: 'failed', code: 'join_failed', message: 'the fake recorder was told to fail' })
  process.exit(1)
}
if (behaviour === 'malformed') {
  process.stdout.write('this is not json\n{"type":"progress","bytes":"many"}\n{"type":"no-such-type"}\n')
}
if (behaviour !== 'silent') {
  say({ type: 'started', recordingId: config.recordingId, at: Date.now() })
  mkdirSync(join(dir, 'segments'), { recursive: true })
  writeFileSync(join(dir, 'segments', 'segment-000.bin'), Buffer.alloc(1000, 1))
  say({ type: 'progress', bytes: 1000, segments: 1 })
}
if (behaviour === 'orphan') {
  // A helper (as ffmpeg or Xvfb would be) that outlives its crashed parent unless someone ends it.
  const helper = spawn(process.execPath, ['-e', 'setInterval(() => undefined, 60000)'], { stdio: 'ignore' })
  writeFileSync(join(dir, 'helper.pid'), String(helper.pid))
  helper.unref()
}
if (behaviour === 'crash' || behaviour === 'orphan') {
  process.stderr.write('fake recorder: simulated crash\n')
  process.exit(3)
}

// Stays alive until signalled.
setInterval(() => undefined, 60_000)
