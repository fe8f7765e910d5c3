// Offers shaped like Chromium's (audio/opus + video/VP8, BUNDLE, rtcp-mux), for HTTP tests that
// need an SDP the engine can answer but no media.

const FINGERPRINT =
  'sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:3A:3F:9B:1F:6A:A4:9C:85:F5:52:47:18'

function section(kind: 'audio' | 'video', mid: string, direction: 'sendonly' | 'recvonly', ssrc: number): string[] {
  const codec =
    kind === 'audio'
      ? ['m=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=rtpmap:111 opus/48000/2', 'a=rtcp-fb:111 transport-cc', 'a=fmtp:111 minptime=10;useinbandfec=1']
      : [
          'm=video 9 UDP/TLS/RTP/SAVPF 96',
          'a=rtpmap:96 VP8/90000',
          'a=rtcp-fb:96 goog-remb',
          'a=rtcp-fb:96 transport-cc',
          'a=rtcp-fb:96 ccm fir',
          'a=rtcp-fb:96 nack',
          'a=rtcp-fb:96 nack pli',
        ]
  const [mLine, ...attributes] = codec
  return [
    mLine as string,
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    'a=ice-ufrag:Fx3b',
    'a=ice-pwd:Qk7sYp1t2Jc9bV0mN4rL6wZ8',
    'a=ice-options:trickle',
    `a=fingerprint:${FINGERPRINT}`,
    'a=setup:actpass',
    `a=mid:${mid}`,
    'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
    `a=${direction}`,
    ...(direction === 'sendonly' ? [`a=msid:stream-1 ${kind}-track-1`] : []),
    'a=rtcp-mux',
    ...(kind === 'video' ? ['a=rtcp-rsize'] : []),
    ...attributes,
    ...(direction === 'sendonly' ? [`a=ssrc:${ssrc} cname:conclave-test`, `a=ssrc:${ssrc} msid:stream-1 ${kind}-track-1`] : []),
  ]
}

function offer(sections: string[][]): string {
  const mids = sections.map((lines) => (lines.find((line) => line.startsWith('a=mid:')) ?? '').slice(6))
  return (
    [
      'v=0',
      'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
      's=-',
      't=0 0',
      `a=group:BUNDLE ${mids.join(' ')}`,
      'a=extmap-allow-mixed',
      'a=msid-semantic: WMS stream-1',
      ...sections.flat(),
    ].join('\r\n') + '\r\n'
  )
}

/** A WHIP publisher: one audio and one video track, sendonly. */
export const PUBLISH_OFFER = offer([section('audio', '0', 'sendonly', 1111), section('video', '1', 'sendonly', 2222)])

/** A WHEP viewer: one audio and one video receive m-line. */
export const VIEW_OFFER = offer([section('audio', '0', 'recvonly', 0), section('video', '1', 'recvonly', 0)])

/** Not SDP at all. */
export const GARBAGE_SDP = 'this is not an SDP offer\r\n'
