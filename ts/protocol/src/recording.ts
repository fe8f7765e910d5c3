// Recordings as the REST API and participants see them: modes, states, files. Formats only; the
// server supervises the recorder process and decides who may start or stop one.

import * as z from 'zod'
import { RoomId } from './ids.js'

/** One recording, assigned by the server. */
export const RecordingId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).brand<'RecordingId'>()
export type RecordingId = z.infer<typeof RecordingId>

/** `composite`: one mixed video of the meeting as a participant sees it. `tracks`: every track on its own. */
export const RECORDING_MODES = ['composite', 'tracks'] as const
export const RecordingMode = z.enum(RECORDING_MODES)
export type RecordingMode = z.infer<typeof RecordingMode>

/**
 * `starting`: the recorder runs but has not said it records; `recording`; `stopping`: asked to
 * stop, finalizing; `finalized`: its output is complete (or `partial`); `failed`: it ended without
 * finalizing (crash, refused start), possibly leaving a `partial` output.
 */
export const RECORDING_STATES = ['starting', 'recording', 'stopping', 'finalized', 'failed'] as const
export const RecordingState = z.enum(RECORDING_STATES)
export type RecordingState = z.infer<typeof RecordingState>

/** A recording in progress, as every participant of its room sees it (the "recording" indicator). */
export const RecordingInfo = z.object({
  recordingId: RecordingId,
  mode: RecordingMode,
  /** Milliseconds since the epoch. */
  startedAt: z.number(),
})
export type RecordingInfo = z.infer<typeof RecordingInfo>

/** One file of a recording's output and where to fetch it. */
export const RecordingFile = z.object({
  /** The path inside the recording's output, `/`-separated. */
  name: z.string(),
  /** `/v1/recordings/{id}/files/{name}` for a local folder, the blob URL for Azure. */
  url: z.string(),
  bytes: z.number().int().optional(),
})
export type RecordingFile = z.infer<typeof RecordingFile>

export const RecordingDetails = z.object({
  recordingId: RecordingId,
  room: RoomId,
  mode: RecordingMode,
  state: RecordingState,
  /** The output misses a part: the recorder crashed or was killed before it finalized. */
  partial: z.boolean(),
  startedAt: z.number(),
  /** When the recorder process ended. */
  endedAt: z.number().optional(),
  /** Bytes and segments written so far, as the recorder last reported. */
  bytes: z.number().int().optional(),
  segments: z.number().int().optional(),
  /** Why it failed, when it did. */
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  files: z.array(RecordingFile),
  /**
   * The server instance that runs (ran) it. With several instances and a local recordings folder,
   * only that instance lists and serves the files (unless the folder is shared).
   */
  nodeId: z.string().optional(),
  /** Why `files` may be incomplete on the instance that answered (the files are on another instance's disk). */
  filesNotice: z.string().optional(),
  /** The recorder's own index of the output (`recording.json`), once finalized. */
  index: z.record(z.string(), z.unknown()).optional(),
})
export type RecordingDetails = z.infer<typeof RecordingDetails>

export const RecordingList = z.object({ recordings: z.array(RecordingDetails) })
export type RecordingList = z.infer<typeof RecordingList>

/** `POST /v1/rooms/{room}/recordings`. */
export const CreateRecordingRequest = z.object({
  /** Default `composite`. */
  mode: RecordingMode.default('composite'),
})
export type CreateRecordingRequest = z.infer<typeof CreateRecordingRequest>
