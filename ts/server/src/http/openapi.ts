// The OpenAPI 3.1 document of the REST API, generated from ts/protocol's zod schemas, so the
// document and the validation can never disagree.

import * as z from 'zod'
import {
  BreakoutsResponse,
  CountResponse,
  CreateBreakoutsBody,
  CreateRecordingRequest,
  CreateRoomRequest,
  CreateTokenRequest,
  ERROR_CODES,
  ErrorBody,
  HealthResponse,
  MoveToBreakoutBody,
  MuteRequest,
  ParticipantDetails,
  ParticipantList,
  RecordingDetails,
  RecordingList,
  RoomDetails,
  RoomList,
  TokenResponse,
  UpdateParticipantRequest,
  UpdateRoomRequest,
  WaitingDecisionRequest,
  WaitingList,
} from '@conclave/protocol'

interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete'
  path: string
  summary: string
  request?: z.ZodType
  /** The success status and its body (none for 204). */
  status: number
  response?: z.ZodType
  /** True for the routes that take no API key. */
  open?: boolean
  query?: string[]
}

const OPERATIONS: Operation[] = [
  { method: 'post', path: '/v1/tokens', summary: 'Mint an access token', request: CreateTokenRequest, status: 201, response: TokenResponse },
  {
    method: 'get',
    path: '/v1/dev-token',
    summary: 'A host token for the meeting page (open dev mode only; 404 otherwise)',
    status: 200,
    response: TokenResponse,
    open: true,
    query: ['room', 'name', 'role'],
  },
  { method: 'get', path: '/v1/rooms', summary: 'List rooms', status: 200, response: RoomList },
  { method: 'post', path: '/v1/rooms', summary: 'Create a room with options', request: CreateRoomRequest, status: 201, response: RoomDetails },
  { method: 'get', path: '/v1/rooms/{room}', summary: 'Get a room', status: 200, response: RoomDetails },
  { method: 'patch', path: '/v1/rooms/{room}', summary: 'Lock or unlock a room, turn its waiting room on or off', request: UpdateRoomRequest, status: 200, response: RoomDetails },
  { method: 'delete', path: '/v1/rooms/{room}', summary: 'Close a room: everyone in it is disconnected', status: 204 },
  { method: 'get', path: '/v1/rooms/{room}/participants', summary: 'List participants (waiting and active; WHIP publishers and hidden WHEP viewers too)', status: 200, response: ParticipantList },
  { method: 'get', path: '/v1/rooms/{room}/participants/{participant}', summary: 'Get a participant', status: 200, response: ParticipantDetails },
  {
    method: 'patch',
    path: '/v1/rooms/{room}/participants/{participant}',
    summary: "Change a participant's role or grants (takes effect at once, on media too)",
    request: UpdateParticipantRequest,
    status: 200,
    response: ParticipantDetails,
  },
  {
    method: 'delete',
    path: '/v1/rooms/{room}/participants/{participant}',
    summary: 'Remove a participant; its identity cannot join this room again',
    status: 204,
  },
  {
    method: 'post',
    path: '/v1/rooms/{room}/participants/{participant}/mute',
    summary: "Stop forwarding one of a participant's tracks, or all of them",
    request: MuteRequest,
    status: 200,
    response: CountResponse,
  },
  { method: 'get', path: '/v1/rooms/{room}/waiting', summary: 'List the waiting room', status: 200, response: WaitingList },
  { method: 'post', path: '/v1/rooms/{room}/waiting/admit', summary: 'Admit some or all waiting participants', request: WaitingDecisionRequest, status: 200, response: CountResponse },
  { method: 'post', path: '/v1/rooms/{room}/waiting/deny', summary: 'Deny some or all waiting participants', request: WaitingDecisionRequest, status: 200, response: CountResponse },
  { method: 'get', path: '/v1/rooms/{room}/breakouts', summary: 'The breakout groups running in a room (`null`: none)', status: 200, response: BreakoutsResponse },
  {
    method: 'post',
    path: '/v1/rooms/{room}/breakouts',
    summary: 'Split a room into breakout groups; each hears, sees and chats only with itself (409 breakouts_running while one runs)',
    request: CreateBreakoutsBody,
    status: 201,
    response: BreakoutsResponse,
  },
  {
    method: 'post',
    path: '/v1/rooms/{room}/breakouts/move',
    summary: 'Move a participant into a breakout group, or back to the main room with `groupId: null`',
    request: MoveToBreakoutBody,
    status: 200,
    response: BreakoutsResponse,
  },
  { method: 'delete', path: '/v1/rooms/{room}/breakouts', summary: 'End the breakouts: everyone is back in the main room', status: 204 },
  {
    method: 'post',
    path: '/v1/rooms/{room}/recordings',
    summary: 'Start recording the room (API key, or a host or cohost token of the room); 409 recording_already_active, 501 for mode tracks until it exists',
    request: CreateRecordingRequest,
    status: 201,
    response: RecordingDetails,
  },
  { method: 'get', path: '/v1/rooms/{room}/recordings', summary: "The room's recordings, past and present", status: 200, response: RecordingList },
  {
    method: 'delete',
    path: '/v1/rooms/{room}/recordings/{recording}',
    summary: 'Stop a recording: 202 while it finalizes, 200 when it had already ended',
    status: 202,
    response: RecordingDetails,
  },
  { method: 'get', path: '/v1/recordings', summary: 'Every recording (a host token: those of its room), with links to their files', status: 200, response: RecordingList },
  { method: 'get', path: '/v1/recordings/{recording}', summary: 'One recording: state, partial flag, index and file links', status: 200, response: RecordingDetails },
  {
    method: 'get',
    path: '/v1/recordings/{recording}/files/{name}',
    summary: 'A file of a recording in the local folder, read-only (`name` may contain `/`)',
    status: 200,
  },
  { method: 'get', path: '/healthz', summary: 'The process is up', status: 200, response: HealthResponse, open: true },
  { method: 'get', path: '/readyz', summary: 'The process can serve (store and media answer); 503 otherwise', status: 200, response: HealthResponse, open: true },
]

function schema(type: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(type, { io, unrepresentable: 'any' }) as Record<string, unknown>
  return rest
}

let cached: Record<string, unknown> | undefined

/** The document served at /v1/openapi.json. */
export function openApiDocument(): Record<string, unknown> {
  if (cached !== undefined) return cached
  const paths: Record<string, Record<string, unknown>> = {}
  for (const operation of OPERATIONS) {
    const parameters = [
      ...[...operation.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      ...(operation.query ?? []).map((name) => ({ name, in: 'query', required: name === 'room', schema: { type: 'string' } })),
    ]
    const responses: Record<string, unknown> = {
      [operation.status]: operation.response
        ? { description: 'success', content: { 'application/json': { schema: schema(operation.response, 'output') } } }
        : { description: 'success, no body' },
      default: { description: 'an error with a stable code', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
    }
    paths[operation.path] ??= {}
    ;(paths[operation.path] as Record<string, unknown>)[operation.method] = {
      summary: operation.summary,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(operation.request
        ? { requestBody: { required: true, content: { 'application/json': { schema: schema(operation.request, 'input') } } } }
        : {}),
      responses,
      ...(operation.open ? { security: [] } : {}),
    }
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'Conclave REST API',
      version: '1',
      description:
        'Rooms, participants, the waiting room and access tokens. Authenticate with `Authorization: Bearer <CONCLAVE_API_KEY>` ' +
        '(or `X-Api-Key`). Errors are `{ code, message }` with one of the stable codes below; the HTTP status follows the code.',
    },
    servers: [{ url: '/' }],
    security: [{ apiKey: [] }],
    paths,
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'CONCLAVE_API_KEY' } },
      schemas: { Error: { ...schema(ErrorBody, 'output'), description: `code is one of: ${ERROR_CODES.join(', ')}` } },
    },
  }
  return cached
}
