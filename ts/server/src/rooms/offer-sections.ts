// Reads just enough of an SDP offer to enforce publish grants: which m-lines send, by mid and kind.
// Not a parser: the engine parses and validates the offer; this only looks at m=, a=mid, direction.

import type { MediaKind } from '@conclave/protocol'

export interface SendingSection {
  mid: string
  kind: MediaKind
}

/** The audio/video m-lines of `sdp` that send media (sendonly or sendrecv, port not 0). */
export function sendingSections(sdp: string): SendingSection[] {
  const sections: SendingSection[] = []
  let current: { kind: MediaKind | undefined; mid: string | undefined; sending: boolean; rejected: boolean } | undefined
  const close = () => {
    if (current?.kind !== undefined && current.mid !== undefined && current.sending && !current.rejected) {
      sections.push({ mid: current.mid, kind: current.kind })
    }
  }
  for (const raw of sdp.split('\n')) {
    const line = raw.trimEnd()
    if (line.startsWith('m=')) {
      close()
      const [media, port] = line.slice(2).split(' ')
      // RFC 3264 §6: a direction attribute absent means sendrecv.
      current = {
        kind: media === 'audio' || media === 'video' ? media : undefined,
        mid: undefined,
        sending: true,
        rejected: port === '0',
      }
    } else if (current !== undefined) {
      if (line.startsWith('a=mid:')) current.mid = line.slice(6)
      else if (line === 'a=recvonly' || line === 'a=inactive') current.sending = false
      else if (line === 'a=sendonly' || line === 'a=sendrecv') current.sending = true
    }
  }
  close()
  return sections
}
