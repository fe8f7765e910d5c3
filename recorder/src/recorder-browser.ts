// Chromium as the silent participant: headful on the virtual display, playing into the recording
// sink, showing the server's recorder page; what the page sees of the room comes back as reports.

import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { RecorderError } from './errors.js'
import type { LogLine } from './child-process.js'

/** What the recorder page reports (see ts/client/src/recorder-page.ts). */
export type RecorderReport =
  | { type: 'joined'; participantId: string; participants: { participantId: string; name: string }[] }
  | { type: 'participant-joined' | 'participant-left'; participantId: string; name: string }
  | { type: 'track'; trackId: string; participantId: string; kind: string }
  | { type: 'track-ended'; trackId: string; participantId: string }
  | { type: 'failed'; message: string }
  | { type: 'closed'; reason: string }

export interface RecorderBrowserOptions {
  chromium: string
  display: string
  pulseServer: string
  pulseSink: string
  width: number
  height: number
  serverUrl: string
  room: string
  token: string
  onReport: (report: RecorderReport, at: Date) => void
  log?: LogLine
  /** How long joining may take, in ms. Default 20 000. */
  joinTimeoutMs?: number
}

export interface RecorderBrowser {
  browser: Browser
  page: Page
  /** The browser process's pid, for CPU and memory accounting. */
  pid: number | undefined
  close(): Promise<void>
}

const CHROMIUM_ARGS = [
  '--no-sandbox',
  // Hides the "unsupported command-line flag" bar --no-sandbox would draw over the recording.
  '--test-type',
  '--kiosk',
  '--disable-infobars',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-translate',
  '--disable-features=Translate,MediaRouter,DialMediaRouteProvider',
  '--password-store=basic',
  '--hide-scrollbars',
  '--autoplay-policy=no-user-gesture-required',
  // The window is never focused by anyone: nothing may be throttled.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
]

export async function openRecorderBrowser(options: RecorderBrowserOptions): Promise<RecorderBrowser> {
  const { chromium, display, pulseServer, pulseSink, width, height, serverUrl, room, token, onReport, log, joinTimeoutMs = 20_000 } = options
  let browser: Browser
  try {
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: false,
      defaultViewport: null,
      // Without it Chromium draws "controlled by automated test software" into the recording.
      ignoreDefaultArgs: ['--enable-automation'],
      args: [...CHROMIUM_ARGS, `--window-size=${width},${height}`, '--window-position=0,0'],
      env: { ...process.env, DISPLAY: display, PULSE_SERVER: pulseServer, PULSE_SINK: pulseSink },
      protocolTimeout: 60_000,
    })
  } catch (error) {
    throw new RecorderError('environment_failed', `Chromium did not start: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  try {
    const page = (await browser.pages())[0] ?? (await browser.newPage())
    let settle: ((report: RecorderReport) => void) | undefined
    const joined = new Promise<RecorderReport>((resolve) => (settle = resolve))
    await page.exposeFunction('conclaveRecorderReport', (json: string) => {
      let report: RecorderReport
      try {
        report = JSON.parse(json) as RecorderReport
      } catch {
        return
      }
      if (report.type === 'joined' || report.type === 'failed') settle?.(report)
      onReport(report, new Date())
    })
    const logged = new Set<string>()
    page.on('console', (message) => {
      // Once each: a page that repeats itself must not flood the recorder's log.
      if ((message.type() === 'error' || message.type() === 'warn') && !logged.has(message.text()) && logged.size < 100) {
        logged.add(message.text())
        log?.(`page: ${message.text()}`)
      }
    })
    const query = new URLSearchParams({ room, name: 'Recorder' })
    if (token !== '') query.set('token', token)
    await page.goto(`${serverUrl.replace(/\/+$/, '')}/recorder.html?${query}`)
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), joinTimeoutMs).unref())
    const outcome = await Promise.race([joined, timeout])
    if (outcome === undefined) throw new RecorderError('join_failed', `the recorder page did not join ${room} within ${joinTimeoutMs} ms`)
    if (outcome.type === 'failed') throw new RecorderError('join_failed', `the recorder could not join ${room}: ${outcome.message}`)
    return {
      browser,
      page,
      pid: browser.process()?.pid,
      close: async () => {
        if (browser.connected) await browser.close().catch(() => browser.process()?.kill('SIGKILL'))
      },
    }
  } catch (error) {
    await browser.close().catch(() => browser.process()?.kill('SIGKILL'))
    if (error instanceof RecorderError) throw error
    throw new RecorderError('join_failed', `the recorder page failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
}
