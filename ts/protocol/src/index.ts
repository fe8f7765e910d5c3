// @conclave/protocol: the typed wire contract between Conclave's server and its clients.

export * from './errors.js'
export * from './ids.js'
export * from './signaling.js'
