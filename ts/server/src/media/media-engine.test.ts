// The MediaEngine contract, run against the fake and the native addon alike: the fake is only
// worth its tests while it behaves like the real engine.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { eventually } from '../../test/support/eventually.js'
import { ENGINE_FLAVORS } from '../../test/support/media-engines.js'
import { GARBAGE_SDP, PUBLISH_OFFER, VIEW_OFFER } from '../../test/support/sdp-fixtures.js'
import { AppError } from '../app-error.js'
import type { EngineTrackId, MediaEngine, MediaEvent, PeerId } from './media-engine.js'

function withCode(code: string) {
  return (error: unknown) => error instanceof AppError && error.code === code
}

for (const flavor of ENGINE_FLAVORS) {
  describe(`MediaEngine contract (${flavor.name})`, { skip: flavor.skip }, () => {
    let media: MediaEngine
    let events: MediaEvent[]

    beforeEach(async () => {
      media = await flavor.create()
      events = []
      media.onEvents((batch) => events.push(...batch))
    })

    afterEach(async () => {
      await media.close()
    })

    async function publish(): Promise<{ peerId: PeerId; audio: EngineTrackId; video: EngineTrackId }> {
      const peerId = await media.createPeer()
      await media.applyOffer(peerId, PUBLISH_OFFER)
      const published = await eventually('two track-published events', () => {
        const mine = events.filter((event) => event.type === 'track-published' && event.peerId === peerId)
        return mine.length === 2 ? mine : undefined
      })
      const trackOf = (kind: string) => {
        const event = published.find((candidate) => candidate.type === 'track-published' && candidate.kind === kind)
        assert.ok(event !== undefined && event.type === 'track-published', kind)
        return event.trackId
      }
      return { peerId, audio: trackOf('audio'), video: trackOf('video') }
    }

    test('an offer is answered before any event it caused is delivered', async () => {
      const peerId = await media.createPeer()
      const order: string[] = []
      media.onEvents((batch) => order.push(...batch.map((event) => event.type)))
      const answer = await media.applyOffer(peerId, PUBLISH_OFFER).then((sdp) => {
        order.push('reply')
        return sdp
      })
      assert.match(answer, /^v=0\r\n/)
      await eventually('the events', () => order.length >= 3)
      assert.deepEqual(order, ['reply', 'track-published', 'track-published'])
    })

    test('published tracks carry their kind and mid', async () => {
      const { peerId } = await publish()
      const published = events.filter((event) => event.type === 'track-published' && event.peerId === peerId)
      assert.deepEqual(
        published.map((event) => (event.type === 'track-published' ? [event.kind, event.mid] : [])).sort(),
        [
          ['audio', '0'],
          ['video', '1'],
        ],
      )
    })

    test('a viewer is subscribed into its receive m-lines of the right kind, one track each', async () => {
      const { audio, video } = await publish()
      const viewer = await media.createPeer()
      await media.applyOffer(viewer, VIEW_OFFER)
      assert.equal((await media.subscribe(viewer, video)).mid, '1')
      assert.equal((await media.subscribe(viewer, audio)).mid, '0')
      await assert.rejects(media.subscribe(viewer, video), withCode('already_subscribed'))
      const second = await publish()
      await assert.rejects(media.subscribe(viewer, second.video), withCode('no_free_slot'))
      assert.equal((await media.stats()).subscriptions, 2)
      await media.unsubscribe(viewer, video)
      await assert.rejects(media.unsubscribe(viewer, video), withCode('not_subscribed'))
      assert.equal((await media.subscribe(viewer, second.video)).mid, '1', 'a freed m-line takes another track')
    })

    test('a layer preference applies to a track the peer receives, and only to one', async () => {
      const { video } = await publish()
      const viewer = await media.createPeer()
      await media.applyOffer(viewer, VIEW_OFFER)
      await assert.rejects(media.setLayerPreference(viewer, video, { maxHeight: 180 }), withCode('not_subscribed'))
      await assert.rejects(media.setLayerPreference(999 as PeerId, video, { maxHeight: 180 }), withCode('peer_not_found'))
      await media.subscribe(viewer, video)
      await media.setLayerPreference(viewer, video, { maxHeight: 180 })
      await media.setLayerPreference(viewer, video, { maxSpatialLayer: 0 })
      await media.setLayerPreference(viewer, video, {})
      assert.ok(!events.some((event) => event.type === 'layer-switched'), 'a track of one layer never switches')
    })

    test('a peer moves between partitions while keeping its subscriptions; an unknown peer is peer_not_found', async () => {
      const { video } = await publish()
      const viewer = await media.createPeer()
      await media.applyOffer(viewer, VIEW_OFFER)
      await media.subscribe(viewer, video)
      await media.setPartition(viewer, 4)
      await media.setPartition(viewer, 0)
      assert.equal((await media.stats()).subscriptions, 1, 'nothing is unsubscribed')
      await assert.rejects(media.setPartition(999 as PeerId, 1), withCode('peer_not_found'))
    })

    test('an RTP forward tees a track to a private address until removed or the track ends', async () => {
      const { peerId, audio, video } = await publish()
      const camera = await media.addRtpForward(video, { address: '127.0.0.1', port: 47_000 })
      assert.deepEqual([camera.trackId, camera.kind, camera.codec, camera.clockRate, camera.channels], [video, 'video', 'VP8', 90_000, undefined])
      const microphone = await media.addRtpForward(audio, { address: '10.1.2.3', port: 47_002 })
      assert.deepEqual([microphone.kind, microphone.codec, microphone.clockRate, microphone.channels], ['audio', 'opus', 48_000, 2])
      assert.notEqual(camera.id, microphone.id)
      await assert.rejects(media.addRtpForward(video, { address: '8.8.8.8', port: 5004 }), withCode('forbidden'))
      await assert.rejects(media.addRtpForward(video, { address: 'localhost', port: 5004 }), withCode('bad_request'))
      await assert.rejects(media.addRtpForward(999 as EngineTrackId, { address: '127.0.0.1', port: 5004 }), withCode('track_not_found'))
      assert.equal(await media.removeRtpForward(camera.id), true)
      assert.equal(await media.removeRtpForward(camera.id), false, 'removing again is no error')
      await media.closePeer(peerId)
      assert.equal(await media.removeRtpForward(microphone.id), false, 'the forward ended with its track')
    })

    test('misuse is an error with a stable code', async () => {
      await assert.rejects(media.applyOffer(999 as PeerId, PUBLISH_OFFER), withCode('peer_not_found'))
      await assert.rejects(media.closePeer(999 as PeerId), withCode('peer_not_found'))
      const peerId = await media.createPeer()
      await assert.rejects(media.applyOffer(peerId, GARBAGE_SDP), withCode('invalid_sdp'))
      await assert.rejects(media.subscribe(peerId, 999 as EngineTrackId), withCode('track_not_found'))
    })

    test("closing a publisher ends its tracks and frees its viewers' m-lines", async () => {
      const { peerId, video } = await publish()
      const viewer = await media.createPeer()
      await media.applyOffer(viewer, VIEW_OFFER)
      await media.subscribe(viewer, video)
      await media.closePeer(peerId)
      await eventually('both tracks ended', () => events.filter((event) => event.type === 'track-ended' && event.peerId === peerId).length === 2)
      const stats = await media.stats()
      assert.deepEqual([stats.peers, stats.tracks, stats.subscriptions], [1, 0, 0])
    })

    test('after close every command rejects with worker_closed', async () => {
      await media.close()
      await assert.rejects(media.createPeer(), withCode('worker_closed'))
    })
  })
}
