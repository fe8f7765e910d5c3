// How the SDK publishes scalable video: simulcast encodings (lowest quality first), or one SVC
// encoding (VP9/AV1 with a scalability mode) whose layers the server picks per subscriber.

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

/** Video in one encoding with spatial and temporal layers, e.g. `{ codec: 'VP9', scalabilityMode: 'L3T3_KEY' }`. */
export interface SvcPublishing {
  codec: 'VP9' | 'AV1'
  /** A WebRTC-SVC scalability mode; `L3T3_KEY` is three spatial by three temporal layers. */
  scalabilityMode: string
}

/** The RTP header extension that tells the server each packet's layers (AV1 RTP spec, appendix A). */
export const DEPENDENCY_DESCRIPTOR_URI = 'https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension'

/**
 * How to add a local track: SVC video gets one encoding with the scalability mode, simulcast video
 * {@link SIMULCAST_ENCODINGS}, the rest one plain encoding. SVC wins over simulcast.
 */
export function sendTransceiverInit(track: MediaStreamTrack, stream: MediaStream, simulcast: boolean, svc?: SvcPublishing): RTCRtpTransceiverInit {
  const init: RTCRtpTransceiverInit = { direction: 'sendonly', streams: [stream] }
  if (svc !== undefined && track.kind === 'video') init.sendEncodings = [{ scalabilityMode: svc.scalabilityMode } as RTCRtpEncodingParameters]
  // Copies: the browser may write into the encodings it is given.
  else if (simulcast && track.kind === 'video') init.sendEncodings = SIMULCAST_ENCODINGS.map((encoding) => ({ ...encoding }))
  return init
}

/** A codec to send the camera in (simulcast or one layer); H.264 suits devices that encode it in hardware. */
export type VideoCodec = 'VP8' | 'H264'

/**
 * Makes a video transceiver offer only `codec` (with its retransmission and redundancy helpers):
 * the server answers VP8 whenever it is offered, so listing it first would not be enough. For
 * H.264, constrained baseline with packetization-mode 1 leads: the profile the server prefers and
 * every decoder has. A browser without the codec keeps its defaults.
 */
export function preferCodec(transceiver: RTCRtpTransceiver, codec: VideoCodec): void {
  const codecs = RTCRtpReceiver.getCapabilities('video')?.codecs ?? []
  const mimeType = `video/${codec}`.toLowerCase()
  const rank = (fmtp = '') => Number(!/profile-level-id=42e0/i.test(fmtp)) + Number(!/packetization-mode=1/.test(fmtp))
  const preferred = codecs.filter((candidate) => candidate.mimeType.toLowerCase() === mimeType).sort((a, b) => rank(a.sdpFmtpLine) - rank(b.sdpFmtpLine))
  const helpers = codecs.filter((candidate) => /^video\/(rtx|red|ulpfec|flexfec-03)$/i.test(candidate.mimeType))
  if (preferred.length > 0) transceiver.setCodecPreferences([...preferred, ...helpers])
}

/** `getHeaderExtensionsToNegotiate` entries (WebRTC extensions; not in every DOM typing yet). */
interface HeaderExtensionToNegotiate {
  uri: string
  direction: RTCRtpTransceiverDirection
}

/**
 * Makes an SVC video transceiver offer `svc.codec` first and the Dependency Descriptor, which
 * Chromium leaves out of offers unless asked (the server reads the layers from it). A browser
 * without the codec or the API keeps its defaults: the server then forwards every layer.
 */
export function preferSvc(transceiver: RTCRtpTransceiver, svc: SvcPublishing): void {
  const codecs = RTCRtpReceiver.getCapabilities('video')?.codecs ?? []
  const mimeType = `video/${svc.codec}`.toLowerCase()
  const preferred = codecs.filter((codec) => codec.mimeType.toLowerCase() === mimeType)
  if (preferred.length > 0) {
    // Profile 0 first: the one the server accepts and every decoder has.
    preferred.sort((a, b) => Number(!/profile(-id)?=0/.test(a.sdpFmtpLine ?? 'profile-id=0')) - Number(!/profile(-id)?=0/.test(b.sdpFmtpLine ?? 'profile-id=0')))
    transceiver.setCodecPreferences([...preferred, ...codecs.filter((codec) => !preferred.includes(codec))])
  }
  negotiateDependencyDescriptor(transceiver)
}

/** Adds the Dependency Descriptor to what a video transceiver offers, where the browser can. */
export function negotiateDependencyDescriptor(transceiver: RTCRtpTransceiver): void {
  const extensions = transceiver as RTCRtpTransceiver & {
    getHeaderExtensionsToNegotiate?: () => HeaderExtensionToNegotiate[]
    setHeaderExtensionsToNegotiate?: (extensions: HeaderExtensionToNegotiate[]) => void
  }
  if (extensions.getHeaderExtensionsToNegotiate === undefined || extensions.setHeaderExtensionsToNegotiate === undefined) return
  extensions.setHeaderExtensionsToNegotiate(
    extensions
      .getHeaderExtensionsToNegotiate()
      .map((extension) => (extension.uri === DEPENDENCY_DESCRIPTOR_URI ? { ...extension, direction: 'sendrecv' } : extension)),
  )
}
