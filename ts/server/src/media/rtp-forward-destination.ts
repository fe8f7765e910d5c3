// Where the engine may send plain RTP: loopback and private addresses only, since a forward
// carries a participant's media unencrypted.

import { BlockList, isIP } from 'node:net'
import { AppError } from '../app-error.js'
import type { RtpForwardDestination } from './media-engine.js'

const PRIVATE = new BlockList()
PRIVATE.addSubnet('127.0.0.0', 8, 'ipv4')
PRIVATE.addSubnet('10.0.0.0', 8, 'ipv4')
PRIVATE.addSubnet('172.16.0.0', 12, 'ipv4')
PRIVATE.addSubnet('192.168.0.0', 16, 'ipv4')
PRIVATE.addAddress('::1', 'ipv6')
// RFC 4193 unique local addresses.
PRIVATE.addSubnet('fc00::', 7, 'ipv6')

/** Throws `forbidden` unless `destination` is a loopback or private IP and a port in 1-65535. */
export function checkRtpForwardDestination({ address, port }: RtpForwardDestination): void {
  const family = isIP(address)
  if (family === 0 || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new AppError('bad_request', `an RTP forward needs an IP address and a port, got ${address}:${port}`)
  }
  if (!PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6')) {
    throw new AppError('forbidden', `RTP forwards go only to loopback or private addresses, not ${address}`)
  }
}
