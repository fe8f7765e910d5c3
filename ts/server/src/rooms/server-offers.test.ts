import assert from 'node:assert/strict'
import { beforeEach, describe, test } from 'node:test'
import {
  DEFAULT_GRANTS,
  PROTOCOL_VERSION,
  type RoomId,
  type ServerMessage,
  ServerMessage as ServerMessageSchema,
} from '@conclave/protocol'
import { eventually } from '../../test/support/eventually.js'
import { quietLog } from '../../test/support/media-engines.js'
import type { Principal } from '../auth/authenticator.js'
import { MemoryEventBus } from '../cluster/event-bus.js'
import { FakeMediaEngine } from '../media/fake-media-engine.js'
import type { PeerId } from '../media/media-engine.js'
import { SignalingSession } from '../signaling/signaling-session.js'
import { MemoryRoomStore } from '../state/memory-room-store.js'
import { MeetingService } from './meeting-service.js'
import { RoomService } from './room-service.js'

const ROOM = 'daily' as RoomId
const PUBLISH = 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n'
const SCREEN = `${PUBLISH}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n`
/** The fake engine reads only `m=`, `a=mid` and the direction: an answer accepting every m-line. */
const ACCEPT = 'v=0\r\n'

interface Client {
  /** The reply that let it in (`joined` or `resumed`). */
  entered: ServerMessage
  drop(): Promise<void>
  sent: ServerMessage[]
  closed: { code: number; reason: string }[]
  request(message: Record<string, unknown>): Promise<ServerMessage>
  events<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }>[]
}

describe('server offers (members that join with serverOffers)', () => {
  let media: FakeMediaEngine
  let rooms: RoomService
  let meeting: MeetingService
  let nextId = 0

  function build(serverOfferTimeoutMs: number): void {
    media = new FakeMediaEngine()
    let service: MeetingService | undefined
    rooms = new RoomService({ media, log: quietLog, serverOfferTimeoutMs, onTrackChange: (track, change) => service?.trackChanged(track, change) })
    service = new MeetingService({ rooms, store: new MemoryRoomStore(), bus: new MemoryEventBus(), nodeId: 'node-test', log: quietLog })
    meeting = service
  }

  beforeEach(() => build(10_000))

  async function connect(name: string, serverOffers: boolean, resume?: Record<string, unknown>): Promise<Client> {
    const sent: ServerMessage[] = []
    const closed: { code: number; reason: string }[] = []
    const principal: Principal = { room: ROOM, identity: name.toLowerCase(), name, role: 'guest', grants: DEFAULT_GRANTS, expiresAt: undefined, anonymous: false }
    const session = new SignalingSession({
      meeting,
      rooms,
      principal,
      log: quietLog,
      channel: { send: (text) => sent.push(ServerMessageSchema.parse(JSON.parse(text))), close: (code, reason) => closed.push({ code, reason }) },
    })
    const client: Client = {
      entered: undefined as never,
      drop: () => session.handleClose(1006),
      sent,
      closed,
      request: async (message) => {
        const id = `r${++nextId}`
        await session.handleFrame(JSON.stringify({ ...message, id }))
        const reply = sent.find((candidate) => 'id' in candidate && candidate.id === id)
        assert.ok(reply, `a reply to ${JSON.stringify(message)}`)
        return reply
      },
      events: (type) => sent.filter((message) => message.type === type) as never,
    }
    const reply = await client.request(resume ?? { type: 'join', protocolVersion: PROTOCOL_VERSION, room: ROOM, serverOffers })
    assert.equal(reply.type, resume === undefined ? 'joined' : 'resumed', JSON.stringify(reply))
    client.entered = reply
    return client
  }

  const codeOf = (reply: ServerMessage) => (reply.type === 'error' ? reply.code : reply.type)

  /** Ada publishes with server offers; Bob then publishes audio and video: Ada is offered two m-lines. */
  async function adaIsOffered(): Promise<{ ada: Client; bob: Client }> {
    const ada = await connect('Ada', true)
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    const bob = await connect('Bob', false)
    assert.equal(codeOf(await bob.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    await eventually('a server offer to Ada', () => ada.events('offer').length === 1)
    return { ada, bob }
  }

  test('a track with no free m-line is offered to the member, and its answer subscribes it', async () => {
    const { ada } = await adaIsOffered()
    const offer = ada.events('offer')[0]
    assert.ok(offer)
    assert.match(offer.sdp, /m=audio[^]*a=mid:s\d[^]*m=video[^]*a=mid:s\d/)
    assert.deepEqual(
      media.calls.filter(([name]) => name === 'createOffer').map(([, , kinds]) => kinds),
      [['audio', 'video']],
    )
    assert.equal(codeOf(await ada.request({ type: 'answer', sdp: ACCEPT })), 'done')
    const changed = ada.events('subscriptions-changed').at(-1)
    assert.ok(changed)
    assert.deepEqual(changed.subscriptions.map(({ mid, kind }) => `${mid}:${kind}`).sort(), ['s0:audio', 's1:video'])
  })

  test("the member's offer while the server's waits is refused with glare, and accepted after the answer", async () => {
    const { ada } = await adaIsOffered()
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: SCREEN, sources: { '2': 'screen' } })), 'glare')
    assert.equal(codeOf(await ada.request({ type: 'answer', sdp: ACCEPT })), 'done')
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: SCREEN, sources: { '2': 'screen' } })), 'answer')
  })

  test('tracks published while an offer waits are offered together after its answer', async () => {
    const { ada } = await adaIsOffered()
    const cy = await connect('Cy', false)
    assert.equal(codeOf(await cy.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    // Cy's tracks wait for the first offer's answer: no second offer crosses it.
    await eventually("Cy's tracks to reach Ada", () => ada.events('track-published').length === 4)
    assert.equal(ada.events('offer').length, 1)
    assert.equal(codeOf(await ada.request({ type: 'answer', sdp: ACCEPT })), 'done')
    await eventually('a second server offer to Ada', () => ada.events('offer').length === 2)
    assert.deepEqual(media.calls.filter(([name]) => name === 'createOffer').at(-1)?.[2], ['audio', 'video'])
    assert.equal(codeOf(await ada.request({ type: 'answer', sdp: ACCEPT })), 'done')
    assert.equal(ada.events('subscriptions-changed').at(-1)?.subscriptions.length, 4)
  })

  test("an offer the engine refuses because its own offer waits is glare as well", async () => {
    const ada = await connect('Ada', true)
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    await media.createOffer(1 as PeerId, ['video'])
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: SCREEN, sources: { '2': 'screen' } })), 'glare')
  })

  test('an answer with no server offer out is invalid_state', async () => {
    const ada = await connect('Ada', true)
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    assert.equal(codeOf(await ada.request({ type: 'answer', sdp: ACCEPT })), 'invalid_state')
  })

  test('a server offer left unanswered ends the participation with offer_timeout', async () => {
    build(300)
    const { ada } = await adaIsOffered()
    await eventually('Ada to be closed', () => ada.closed.length === 1)
    assert.equal(ada.closed[0]?.reason, 'offer_timeout')
    await eventually("Ada's peer to be closed", () => media.calls.some(([name, peer]) => name === 'closePeer' && peer === (1 as PeerId)))
  })

  test('an offer out when the member drops waits for its resume, is sent again, and answered', async () => {
    build(300)
    const { ada } = await adaIsOffered()
    const joined = ada.entered
    assert.ok(joined.type === 'joined')
    await ada.drop()
    // Longer than the offer's deadline: the member is away, not unresponsive.
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.equal(ada.closed.length, 0)
    const back = await connect('Ada', true, { type: 'resume', protocolVersion: PROTOCOL_VERSION, room: ROOM, participantId: joined.participantId, resumeId: joined.resumeId })
    await eventually('the offer sent again after the resume', () => back.events('offer').length === 1)
    assert.equal(back.events('offer')[0]?.sdp, ada.events('offer')[0]?.sdp)
    assert.equal(codeOf(await back.request({ type: 'answer', sdp: ACCEPT })), 'done')
    assert.equal(back.events('subscriptions-changed').at(-1)?.subscriptions.length, 2)
  })

  test('a member without serverOffers is never offered', async () => {
    const ada = await connect('Ada', false)
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    const bob = await connect('Bob', false)
    assert.equal(codeOf(await bob.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    assert.equal(codeOf(await ada.request({ type: 'offer', sdp: PUBLISH })), 'answer')
    assert.equal(ada.events('offer').length, 0)
    assert.equal(media.calls.filter(([name]) => name === 'createOffer').length, 0)
  })
})
