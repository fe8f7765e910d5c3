// A real coturn (Debian's `coturn`) on a free loopback port with TURN REST auth, started and stopped by
// the tests: its config, database and log live in a temp directory removed on stop.

import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const TURNSERVER = process.env.TURNSERVER_PATH ?? 'turnserver'

export interface Coturn {
  /** `turn:127.0.0.1:<port>?transport=udp`. */
  url: string
  /** Its `static-auth-secret`. */
  secret: string
  /** Everything it logged so far (sessions, allocations, refusals). */
  log(): Promise<string>
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no free port')
  return address.port
}

export async function startCoturn(): Promise<Coturn> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-coturn-'))
  const port = await freePort()
  const secret = randomBytes(16).toString('hex')
  const logFile = join(dir, 'turn.log')
  // A small relay range of its own, away from the usual ephemeral ports, so parallel runs rarely collide.
  const minPort = 20_000 + randomInt(0, 200) * 50
  const config = [
    'listening-ip=127.0.0.1',
    `listening-port=${port}`,
    'relay-ip=127.0.0.1',
    `min-port=${minPort}`,
    `max-port=${minPort + 49}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=conclave.test',
    'no-tls',
    'no-dtls',
    'no-rfc5780',
    // The SFU and the relay share 127.0.0.1 in the test: coturn refuses loopback peers without this.
    'allow-loopback-peers',
    'no-cli',
    'verbose',
    'simple-log',
    `log-file=${logFile}`,
    `pidfile=${join(dir, 'turn.pid')}`,
    `userdb=${join(dir, 'turndb')}`,
  ]
  const configFile = join(dir, 'turnserver.conf')
  await writeFile(configFile, `${config.join('\n')}\n`)
  const child: ChildProcess = spawn(TURNSERVER, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr?.resume()
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const log = () => readFile(logFile, 'utf8').catch(() => '')
  try {
    await new Promise<void>((resolve, reject) => {
      let done = false
      const finish = (error?: Error) => {
        if (done) return
        done = true
        clearInterval(poll)
        clearTimeout(timer)
        if (error) reject(error)
        else resolve()
      }
      const timer = setTimeout(() => void log().then((text) => finish(new Error(`coturn did not start in 10 s: ${text.slice(-800)}`))), 10_000)
      const poll = setInterval(() => {
        void log().then((text) => {
          if (text.includes(`UDP listener opened on: 127.0.0.1:${port}`)) finish()
        })
      }, 50)
      child.once('error', (error) =>
        finish(new Error(`could not start ${TURNSERVER} (Debian's coturn: scripts/setup.sh --for-tests): ${error.message}`)),
      )
      void exited.then(() => log().then((text) => finish(new Error(`coturn exited: ${text.slice(-800)}`))))
    })
  } catch (error) {
    child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  return {
    url: `turn:127.0.0.1:${port}?transport=udp`,
    secret,
    log,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
