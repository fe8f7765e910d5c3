// @conclave/protocol: the typed wire contract between Conclave's server and its clients.

export * from './adaptive-media.js'
export * from './breakouts.js'
export * from './errors.js'
export * from './ids.js'
export * from './meeting.js'
export * from './recording.js'
export * from './rest.js'
export * from './signaling.js'
export * from './tokens.js'
