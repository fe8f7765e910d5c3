// Dynacast on the publisher's side: the server says which simulcast encodings anyone needs, and
// the sender stops (or restarts) the others. `active: false` really stops that encoder, so a
// paused layer costs neither CPU nor uplink.

/**
 * Sets `encodings[i].active = active[i]` on the sender of the m-line `mid`. Encodings are in the
 * order the offer listed their RIDs, which is the order the server counts them in. False when
 * there is no such sender or its encodings do not match (nothing is changed then).
 */
export async function applyEncodings(pc: RTCPeerConnection, mid: string, active: readonly boolean[]): Promise<boolean> {
  const sender = pc.getTransceivers().find((transceiver) => transceiver.mid === mid)?.sender
  if (sender === undefined) return false
  const parameters = sender.getParameters()
  if (parameters.encodings.length !== active.length) return false
  let changed = false
  parameters.encodings.forEach((encoding, index) => {
    const wanted = active[index] ?? true
    if (encoding.active !== wanted) {
      encoding.active = wanted
      changed = true
    }
  })
  if (changed) await sender.setParameters(parameters)
  return true
}
