// A real redis-server (Debian's `redis-server`) on a free loopback port, started and stopped by
// the tests: no persistence, nothing left on disk.

import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

export const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? 'redis-server'

export interface RedisServer {
  url: string
  port: number
  /** A new client of this server; the caller quits it. */
  client(): Redis
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

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp', '--loglevel', 'notice']
  const child: ChildProcess = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`redis-server did not start in 10 s: ${output.slice(-500)}`)), 10_000)
    const fail = (error: Error) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(error)
    }
    child.once('error', (error) =>
      fail(new Error(`could not start ${REDIS_SERVER} (Debian's redis-server: scripts/setup.sh --for-tests): ${error.message}`)),
    )
    void exited.then(() => fail(new Error(`redis-server exited: ${output.slice(-500)}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  child.stdout?.resume()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    client: () => new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 }),
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}
