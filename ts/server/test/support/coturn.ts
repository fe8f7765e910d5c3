// A real coturn (Debian's `coturn`) on free loopback ports with TURN REST auth, over UDP and TCP and,
// on request, TLS; started and stopped by the tests: its config, certificate, database and log live in
// a temp directory removed on stop.

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { X509Certificate, createHash, randomBytes, randomInt } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

export const TURNSERVER = process.env.TURNSERVER_PATH ?? 'turnserver'
export const OPENSSL = process.env.OPENSSL_PATH ?? 'openssl'

export interface CoturnOptions {
  /** Also listen for TURN over TLS, with a self-signed certificate for 127.0.0.1 made by `openssl`. */
  tls?: boolean
}

export interface Coturn {
  /** `turn:127.0.0.1:<port>?transport=udp`. */
  url: string
  /** `turn:127.0.0.1:<port>?transport=tcp`: TURN over TCP, same port. */
  tcpUrl: string
  /** With `tls`: `turns:127.0.0.1:<tls port>?transport=tcp`. */
  tlsUrl?: string
  /**
   * With `tls`: base64 SHA-256 of the certificate's public key (SubjectPublicKeyInfo). Chromium refuses
   * the self-signed certificate unless launched with `--ignore-certificate-errors-spki-list=<this>`.
   */
  tlsSpkiSha256?: string
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

/** A self-signed P-256 certificate for IP 127.0.0.1, valid one day, and its SPKI hash. */
async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string; spkiSha256: string }> {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  // Node's crypto makes keys but not X.509 certificates, hence openssl.
  await promisify(execFile)(OPENSSL, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ]).catch((error: Error) => {
    throw new Error(`could not make a certificate with ${OPENSSL}: ${error.message}`)
  })
  const spki = new X509Certificate(await readFile(cert)).publicKey.export({ type: 'spki', format: 'der' })
  return { cert, key, spkiSha256: createHash('sha256').update(spki).digest('base64') }
}

export async function startCoturn({ tls = false }: CoturnOptions = {}): Promise<Coturn> {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-coturn-'))
  const port = await freePort()
  let tlsListener: { port: number; cert: string; key: string; spkiSha256: string } | undefined
  try {
    if (tls) tlsListener = { port: await freePort(), ...(await selfSignedCertificate(dir)) }
  } catch (error) {
    await rm(dir, { recursive: true, force: true })
    throw error
  }
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
    ...(tlsListener === undefined
      ? ['no-tls']
      : [`tls-listening-port=${tlsListener.port}`, `cert=${tlsListener.cert}`, `pkey=${tlsListener.key}`]),
  ]
  // With TLS on, coturn's TCP listeners also take TLS (it sniffs the first bytes) and log as "TLS/TCP".
  const listening = [
    `UDP listener opened on: 127.0.0.1:${port}`,
    `TCP listener opened on : 127.0.0.1:${port}`,
    ...(tlsListener === undefined ? [] : [`TLS/TCP listener opened on : 127.0.0.1:${tlsListener.port}`]),
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
          if (listening.every((line) => text.includes(line))) finish()
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
    tcpUrl: `turn:127.0.0.1:${port}?transport=tcp`,
    ...(tlsListener === undefined
      ? {}
      : { tlsUrl: `turns:127.0.0.1:${tlsListener.port}?transport=tcp`, tlsSpkiSha256: tlsListener.spkiSha256 }),
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
