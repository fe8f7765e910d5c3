import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, test } from 'node:test'
import type { RoomId } from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import { PUBLISH_OFFER, VIEW_OFFER } from '../../test/support/sdp-fixtures.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import type { PeerId } from '../media/media-engine.js'
import { RoomService } from '../rooms/room-service.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'
import { MemoryEventBus } from './event-bus.js'
import { MediaRelay } from './media-relay.js'
import { MemoryRelayNetwork, type RelayMessage, parseRelayMessage } from './relay-messenger.js'

const room = 'cascade' as RoomId

interface Node {
  media: FakeMediaEngine
  rooms: RoomService
  relay: MediaRelay
}

function node(nodeId: string, network: MemoryRelayNetwork, store: MemoryRoomStore, bus: MemoryEventBus, port: number, linkCheckIntervalMs = 10_000): Node {
  const media = new FakeMediaEngine({ udpPort: port })
  let relay: MediaRelay | undefined
  const rooms = new RoomService({
    media,
    log: quietLog,
    trackIdPrefix: `${nodeId}-`,
    onTrackChange: (track, change) => relay?.trackChanged(track, change),
    onRoomChange: (roomId, change) => relay?.roomChanged(roomId, change),
  })
  relay = new MediaRelay({ nodeId, media, rooms, store, bus, messenger: network.join(nodeId), address: { address: '127.0.0.1', port }, log: quietLog, linkCheckIntervalMs })
  return { media, rooms, relay }
}

function count(media: FakeMediaEngine, command: string): number {
  return media.calls.filter(([name]) => name === command).length
}

describe('MediaRelay between two nodes', () => {
  let network: MemoryRelayNetwork
  let a: Node
  let b: Node

  beforeEach(async () => {
    network = new MemoryRelayNetwork()
    const store = new MemoryRoomStore()
    const bus = new MemoryEventBus()
    a = node('a', network, store, bus, 41000)
    b = node('b', network, store, bus, 41001)
    await Promise.all([a.relay.start(), b.relay.start()])
  })

  afterEach(async () => {
    await Promise.all([a.relay.close(), b.relay.close(), a.rooms.close(), b.rooms.close()])
  })

  test("a viewer on node B receives node A's publisher over one link; the tracks end with the publisher", async () => {
    const { participant: viewer } = await b.rooms.view(room, VIEW_OFFER)
    const { participant: publisher } = await a.rooms.publish(room, PUBLISH_OFFER, 'camera')
    await eventually('the viewer to receive both imported tracks', () => viewer.received.size === 2)
    const published = [...(a.rooms.room(room)?.tracks.values() ?? [])].map((track) => track.id).sort()
    const received = [...viewer.received.values()].map(({ track }) => track.id).sort()
    assert.deepEqual(received, published, 'the imported tracks keep their ids')
    assert.ok(received.every((id) => id.startsWith('track-a-')))
    assert.deepEqual([count(a.media, 'createRelayLink'), count(b.media, 'createRelayLink')], [1, 1], 'one link per node pair')
    assert.deepEqual([count(a.media, 'relayExport'), count(b.media, 'relayImport')], [2, 2])
    assert.ok([...viewer.received.values()].every(({ track }) => track.owner.id === publisher.id))

    await a.rooms.leave(publisher, 'done')
    await eventually('node B to end its imports', () => count(b.media, 'relayEndImport') === 2 && viewer.received.size === 0)
    assert.equal(b.rooms.room(room)?.tracks.size, 0)
  })

  test("node B's layer needs for an import reach node A's export (dynacast across the link)", async () => {
    const { participant: viewer } = await b.rooms.view(room, VIEW_OFFER)
    await a.rooms.publish(room, PUBLISH_OFFER, 'camera')
    await eventually('the viewer to receive both tracks', () => viewer.received.size === 2)
    const video = [...(b.rooms.room(room)?.tracks.values() ?? [])].find((track) => track.kind === 'video')
    const link = b.media.calls.find(([name]) => name === 'relayImport')?.[1]
    assert.ok(video !== undefined && typeof link === 'number')
    b.media.report([{ type: 'layers-needed', peerId: link as PeerId, trackId: video.engineId, active: [true, false, false] }])
    await eventually('node A to apply the wanted layers', () => a.media.calls.some(([name, , , wanted]) => name === 'relaySetWantedLayers' && JSON.stringify(wanted) === '[true,false,false]'))
    const exported = [...(a.rooms.room(room)?.tracks.values() ?? [])].find((track) => track.id === video.id)
    assert.equal(a.media.calls.find(([name]) => name === 'relaySetWantedLayers')?.[2], exported?.engineId, "on the publisher's own track")
  })

  test('when its last member leaves, node B ends its imports and node A stops exporting', async () => {
    const { participant: viewer } = await b.rooms.view(room, VIEW_OFFER)
    await a.rooms.publish(room, PUBLISH_OFFER, 'camera')
    await eventually('the viewer to receive both tracks', () => viewer.received.size === 2)
    await b.rooms.leave(viewer, 'done')
    await eventually('node A to unexport both tracks', () => count(a.media, 'relayUnexport') === 2)
    assert.equal(count(b.media, 'relayEndImport'), 2)
  })

  test('a node with nobody in the room imports nothing', async () => {
    await a.rooms.publish(room, PUBLISH_OFFER, 'camera')
    // Node B had nobody in the room when the tracks were announced: nothing imported.
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(count(b.media, 'relayImport'), 0)
  })
})

describe('MediaRelay and a node that dies', () => {
  test('the link to a node that stopped advertising is closed and what came from it ends', async () => {
    const network = new MemoryRelayNetwork()
    const store = new MemoryRoomStore()
    const bus = new MemoryEventBus()
    const a = node('a', network, store, bus, 41000)
    const b = node('b', network, store, bus, 41001, 50)
    await Promise.all([a.relay.start(), b.relay.start()])
    const { participant: viewer } = await b.rooms.view(room, VIEW_OFFER)
    await a.rooms.publish(room, PUBLISH_OFFER, 'camera')
    await eventually('the viewer to receive both tracks', () => viewer.received.size === 2)
    // Node A vanishes without a word: no track-ended, no unexport; only its advertisement goes.
    await a.relay.close()
    await eventually('node B to close its link to A', () => count(b.media, 'closePeer') === 1)
    await eventually('the imported tracks to end at the viewer', () => viewer.received.size === 0 && b.rooms.room(room)?.tracks.size === 0)
    await Promise.all([b.relay.close(), a.rooms.close(), b.rooms.close()])
  })
})

describe('relay messages', () => {
  test('unreadable or malformed messages are refused', () => {
    assert.equal(parseRelayMessage('{'), undefined)
    assert.equal(parseRelayMessage(JSON.stringify({ type: 'export-request', from: 'x' })), undefined)
    const tooManyCodecs = { kind: 'video', layers: [{ ssrc: 1 }], payloadTypes: Array.from({ length: 9 }, () => ({ codec: 'VP8', payloadType: 96 })) }
    assert.equal(parseRelayMessage(JSON.stringify({ type: 'export-reply', from: 'x', requestId: 'r', relayed: tooManyCodecs })), undefined)
    const valid: RelayMessage = { type: 'unexport', from: 'x', roomId: 'r', trackId: 't' }
    assert.deepEqual(parseRelayMessage(JSON.stringify(valid)), valid)
  })

  test('an export request for a track the node does not publish is answered with an error', async () => {
    const network = new MemoryRelayNetwork()
    const a = node('a', network, new MemoryRoomStore(), new MemoryEventBus(), 41000)
    await a.relay.start()
    const asker = network.join('asker')
    const replies: RelayMessage[] = []
    asker.onMessage((message) => replies.push(message))
    await asker.send('a', { type: 'export-request', from: 'asker', requestId: 'r1', roomId: room, trackId: 'track-a-9' })
    await eventually('a reply', () => replies.length === 1)
    const [reply] = replies
    assert.equal(reply?.type === 'export-reply' ? reply.error?.code : undefined, 'track_not_found')
    await Promise.all([a.relay.close(), a.rooms.close()])
  })
})
