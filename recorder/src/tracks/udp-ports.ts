// Free UDP ports for ffmpeg's RTP input, and the check that ffmpeg is listening on one.

import { createSocket, type Socket } from 'node:dgram'
import { readFile } from 'node:fs/promises'
import { RecorderError } from '../errors.js'

function bind(port: number, address: string): Promise<Socket | undefined> {
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4')
  return new Promise((resolve) => {
    socket.once('error', () => {
      socket.close()
      resolve(undefined)
    })
    socket.bind(port, address, () => resolve(socket))
  })
}

/**
 * A port `p` with `p + 1` free too (ffmpeg receives RTCP on the next port). The ports are free
 * when this returns, not reserved: ffmpeg binds them a moment later, and another process could
 * take them first, which `waitForUdpListener` then reports.
 */
export async function findRtpPort(address: string): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const rtp = await bind(0, address)
    if (rtp === undefined) break
    const port = (rtp.address() as { port: number }).port
    const rtcp = port < 65_535 ? await bind(port + 1, address) : undefined
    rtp.close()
    rtcp?.close()
    if (rtcp !== undefined) return port
  }
  throw new RecorderError('environment_failed', `no free pair of UDP ports on ${address}`)
}

/** The UDP ports bound on this machine (any address), from /proc/net/udp and udp6. */
async function boundUdpPorts(): Promise<Set<number>> {
  const ports = new Set<number>()
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string
    try {
      text = await readFile(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      // "  sl  local_address rem_address ...": local_address is HEXIP:HEXPORT.
      const local = line.trim().split(/\s+/)[1]
      const hexPort = local?.split(':')[1]
      if (hexPort !== undefined) ports.add(Number.parseInt(hexPort, 16))
    }
  }
  return ports
}

/** Resolves once something is bound to UDP `port`; false after `timeoutMs` or once `gaveUp()` says so. */
export async function waitForUdpListener(port: number, timeoutMs: number, gaveUp: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !gaveUp()) {
    if ((await boundUdpPorts()).has(port)) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}
