// The engines an HTTP/rooms suite can run against: the fake always, the native addon when built.

import { createLogger } from '../../src/log.js'
import { FakeMediaEngine } from '../../src/media/fake-media-engine.js'
import type { MediaEngine } from '../../src/media/media-engine.js'
import { createNativeMediaEngine, loadMediaAddon } from '../../src/media/native-media-engine.js'

export interface EngineFlavor {
  name: string
  /** Why the flavor cannot run here, or false. */
  skip: string | false
  create(): Promise<MediaEngine>
}

const addonProblem = await loadMediaAddon().then(
  () => false as const,
  (error: unknown) => `the media addon is not built (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`,
)

export const quietLog = createLogger({ level: (process.env.CONCLAVE_LOG_LEVEL as 'debug' | undefined) ?? 'silent' })

export const ENGINE_FLAVORS: EngineFlavor[] = [
  { name: 'fake engine', skip: false, create: async () => new FakeMediaEngine() },
  {
    name: 'native addon',
    skip: addonProblem,
    create: () => createNativeMediaEngine({ port: 0, bindAddress: '127.0.0.1', announcedAddress: '127.0.0.1', log: quietLog }),
  },
]

export const nativeAddonProblem = addonProblem
