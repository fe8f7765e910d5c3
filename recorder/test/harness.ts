// Test support for the recorder: a real Conclave server (tokens required), headless Chromium
// publishers with fake camera and microphone, Azurite, and ffprobe/ffmpeg probes of what was stored.

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, readdir } from 'node:fs/promises'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { promisify } from 'node:util'
import { type ConclaveServer, createLogger, createServer } from '@conclave/server'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { eventually } from './eventually.js'

export { eventually }

const run = promisify(execFile)
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const API_KEY = 'recorder-test-api-key'
const JWT_SECRET = 'recorder-test-secret-of-at-least-32-bytes!'

export function startConclave(): Promise<ConclaveServer> {
  return createServer({
    httpPort: 0,
    httpHost: '127.0.0.1',
    udpPort: 0,
    udpBindAddress: '127.0.0.1',
    announcedAddress: '127.0.0.1',
    jwtSecret: JWT_SECRET,
    apiKey: API_KEY,
    log: createLogger({ level: 'error' }),
  })
}

/** Mints a token through the REST API, as an application would. */
export async function mintToken(server: ConclaveServer, body: { room: string; identity: string; name?: string; role?: string; grants?: Record<string, unknown> }): Promise<string> {
  const response = await fetch(`${server.url}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (!response.ok) throw new Error(`minting a token failed: ${response.status} ${await response.text()}`)
  return ((await response.json()) as { token: string }).token
}

/** The token a recorder joins with: hidden, receive-only. */
export function recorderToken(server: ConclaveServer, room: string): Promise<string> {
  return mintToken(server, { room, identity: 'recorder', name: 'Recorder', grants: { hidden: true, recorder: true, canPublish: false, canChat: false } })
}

export function launchPublisherBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    protocolTimeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  })
}

/** Joins `room` from the meeting page as `name`, publishing the fake camera (moving pattern) and microphone (a beep). */
export async function joinAsPublisher(browser: Browser, server: ConclaveServer, room: string, name: string): Promise<Page> {
  const token = await mintToken(server, { room, identity: name.toLowerCase(), name, role: 'host' })
  const page = await browser.newPage()
  await page.goto(`${server.url}/?${new URLSearchParams({ token })}`)
  await page.type('#room', room)
  await page.type('#name', name)
  await page.click('#join')
  await page.waitForFunction('globalThis.conclave.meeting !== undefined || document.querySelector("#status").textContent.startsWith("Could not")', { timeout: 60_000, polling: 100 })
  if (!((await page.evaluate('globalThis.conclave.meeting !== undefined')) as boolean)) {
    throw new Error(`${name} could not join: ${String(await page.$eval('#status', (node) => node.textContent))}`)
  }
  return page
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

/** Azurite's documented development account (public, not a secret). */
const AZURITE_ACCOUNT = 'devstoreaccount1'
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

export function azuriteConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${port}/${AZURITE_ACCOUNT};`
}

export interface Azurite {
  port: number
  connectionString: string
  stop(): Promise<void>
}

/** Azurite's blob service on `port`, storing under a fresh folder; resolves once it accepts connections. */
export async function startAzurite(port: number): Promise<Azurite> {
  const location = await mkdtemp(join(tmpdir(), 'azurite-'))
  const bin = join(import.meta.dirname, '../../../node_modules/.bin/azurite-blob')
  const child: ChildProcess = spawn(bin, ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', location, '--silent', '--skipApiVersionCheck', '--loose', '--disableProductStyleUrl'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  await eventually('Azurite to listen', async () => {
    if (child.exitCode !== null) throw new Error(`Azurite exited: ${stderr}`)
    await fetch(`http://127.0.0.1:${port}/`)
  }, 90_000)
  return {
    port,
    connectionString: azuriteConnectionString(port),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

/** The container's duration (ffprobe), in seconds. */
export async function mediaDuration(path: string): Promise<number> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', path])
  return Number(stdout.trim())
}

/** Decodes the whole file: throws when ffmpeg reports an error. */
export async function decodeAll(path: string): Promise<void> {
  await run('ffmpeg', ['-v', 'error', '-xerror', '-i', path, '-f', 'null', '-'])
}

/** Mean audio volume in dB (ffmpeg volumedetect); -91 for digital silence. */
export async function meanVolume(path: string): Promise<number> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-i', path, '-map', '0:a', '-af', 'volumedetect', '-f', 'null', '-'])
  const match = /mean_volume: (-?[\d.]+) dB/.exec(stderr)
  if (match === null) throw new Error(`no mean_volume in ${stderr.slice(-500)}`)
  return Number(match[1])
}

/** Luma variance of one frame at `atSeconds`, decoded to 160x90 grey: a blank screen gives ~0. */
export async function frameLumaVariance(path: string, atSeconds: number): Promise<number> {
  const { stdout } = await run('ffmpeg', ['-v', 'error', '-ss', String(atSeconds), '-i', path, '-frames:v', '1', '-vf', 'scale=160:90', '-pix_fmt', 'gray', '-f', 'rawvideo', '-'], {
    encoding: 'buffer',
    maxBuffer: 1 << 20,
  })
  const pixels = stdout as unknown as Buffer
  if (pixels.length === 0) throw new Error(`no frame at ${atSeconds}s of ${path}`)
  let sum = 0
  for (const value of pixels) sum += value
  const mean = sum / pixels.length
  let squares = 0
  for (const value of pixels) squares += (value - mean) ** 2
  return squares / pixels.length
}

/** A process and all its descendants (from /proc/<pid>/task/<tid>/children). */
async function processTree(root: number): Promise<number[]> {
  const found: number[] = []
  const queue = [root]
  while (queue.length > 0) {
    const pid = queue.shift() as number
    found.push(pid)
    let tasks: string[] = []
    try {
      tasks = await readdir(`/proc/${pid}/task`)
    } catch {
      continue // gone meanwhile
    }
    for (const task of tasks) {
      const children = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '')
      for (const child of children.split(' ')) if (child.trim() !== '') queue.push(Number(child))
    }
  }
  return found
}

/**
 * CPU seconds (user + sys) and memory of a process and all its descendants, from /proc. Memory is
 * the sum of PSS: Chromium's processes share most pages, which a sum of RSS would count again and again.
 */
export async function processTreeUsage(root: number): Promise<{ cpuSeconds: number; memoryBytes: number; cpuSecondsByCommand: Record<string, number> }> {
  const ticksPerSecond = 100
  let ticks = 0
  let memoryBytes = 0
  const cpuSecondsByCommand: Record<string, number> = {}
  for (const pid of await processTree(root)) {
    try {
      const text = await readFile(`/proc/${pid}/stat`, 'utf8')
      // The command name may hold spaces: fields start after the last ')'; utime and stime are the 12th and 13th after it.
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
      const own = Number(fields[11] ?? 0) + Number(fields[12] ?? 0)
      ticks += own
      const command = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')).replace(/^chrom.*/, 'chromium')
      cpuSecondsByCommand[command] = (cpuSecondsByCommand[command] ?? 0) + own / ticksPerSecond
      const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8')
      memoryBytes += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024
    } catch {
      // gone meanwhile
    }
  }
  return { cpuSeconds: ticks / ticksPerSecond, memoryBytes, cpuSecondsByCommand }
}

/** The recorder CLI as a child process, its stdout parsed as JSON lines. */
export interface RecorderProcess {
  child: ChildProcess
  lines: Record<string, unknown>[]
  stderr: () => string
  /** Resolves with the first line of `type`. */
  next(type: string, timeoutMs?: number): Promise<Record<string, unknown>>
  exited: Promise<number | null>
}

export const CLI = join(import.meta.dirname, '../src/cli.js')

const running = new Set<ChildProcess>()

/** For `after` hooks: a test that failed half-way must not leave a recorder running. */
export async function killRecorders(): Promise<void> {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
}

/** What the recorder's end-to-end tests run against; read its fields in tests, once `before` ran. */
export interface Testbed {
  readonly server: ConclaveServer
  /** Chromium for the publishers (`joinAsPublisher`). */
  readonly browser: Browser
}

export interface TestbedWithStorage extends Testbed {
  readonly azurite: Azurite
}

/**
 * Registers the calling test file's `before` and `after` hooks: a Conclave server, a publishers'
 * Chromium and, with `storage`, Azurite on a free port; `after` stops them and kills any recorder
 * a failed test left running.
 */
export function setUpTestbed(options: { storage: true }): TestbedWithStorage
export function setUpTestbed(options: { storage: false }): Testbed
export function setUpTestbed({ storage }: { storage: boolean }): Testbed | TestbedWithStorage {
  const testbed = {} as { server: ConclaveServer; browser: Browser; azurite?: Azurite }
  before(async () => {
    testbed.server = await startConclave()
    testbed.browser = await launchPublisherBrowser()
    if (storage) testbed.azurite = await startAzurite(await freePort())
  })
  after(async () => {
    await killRecorders()
    await testbed.browser?.close()
    await testbed.server?.close()
    await testbed.azurite?.stop()
  })
  return testbed
}

export function spawnRecorder(config: Record<string, unknown>, env: Record<string, string> = {}): RecorderProcess {
  const child = spawn(process.execPath, [CLI], {
    env: { ...process.env, ...env, CONCLAVE_RECORDER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  const lines: Record<string, unknown>[] = []
  let stderr = ''
  let buffered = ''
  const waiters: (() => void)[] = []
  child.stdout?.setEncoding('utf8')
  child.stdout?.on('data', (text: string) => {
    buffered += text
    let newline
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      if (line.trim() === '') continue
      lines.push(JSON.parse(line) as Record<string, unknown>)
      for (const wake of waiters.splice(0)) wake()
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    if (process.env.RECORDER_TEST_VERBOSE) process.stderr.write(chunk)
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    for (const wake of waiters.splice(0)) wake()
    resolve(code)
  }))
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async next(type, timeoutMs = 180_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = lines.find((line) => line.type === type)
        if (found !== undefined) return found
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the recorder exited without a ${type} line; stdout ${JSON.stringify(lines)}; stderr ${stderr.slice(-2000)}`)
        if (Date.now() > deadline) throw new Error(`no ${type} line within ${timeoutMs} ms; stderr ${stderr.slice(-2000)}`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 500)
        })
      }
    },
  }
}
