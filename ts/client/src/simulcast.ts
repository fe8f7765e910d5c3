// How the SDK publishes simulcast video: the encodings, lowest quality first.

/**
 * Three simulcast encodings, lowest quality first (the server's layer 0): a quarter, half and
 * full resolution. Chromium sends only the layers its resolution and bitrate allow, so give it
 * at least 1280x720 for all three.
 */
export const SIMULCAST_ENCODINGS: readonly RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4 },
  { rid: 'h', scaleResolutionDownBy: 2 },
  { rid: 'f' },
]

/** How to add a local track: simulcast video gets {@link SIMULCAST_ENCODINGS}, the rest one encoding. */
export function sendTransceiverInit(track: MediaStreamTrack, stream: MediaStream, simulcast: boolean): RTCRtpTransceiverInit {
  const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: [stream] }
  // Copies: the browser may write into the encodings it is given.
  if (simulcast && track.kind === 'video') init.sendEncodings = SIMULCAST_ENCODINGS.map((encoding) => ({ ...encoding }))
  return init
}
