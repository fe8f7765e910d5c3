// Watches remote <video> elements and reports the size each picture is drawn at, so the server
// can send the simulcast layer that fits. Measurement and debouncing only; the sending is given.

import type { TrackId } from '@conclave/protocol'

export interface Size {
  width: number
  height: number
}

/** Sends one size report; a rejection is logged, never thrown. */
export type SizeSink = (trackId: TrackId, size: Size) => Promise<void>

export interface VideoSizeReporterOptions {
  /** Quiet time after the last change before a new size is sent. Default 300 ms. */
  debounceMs?: number
}

/**
 * The size in device pixels at which a picture of `intrinsic` proportions is drawn in a `box` of
 * CSS pixels with the element's `object-fit`. Only the proportions of `intrinsic` matter, so the
 * answer does not change when the server switches layers (which would otherwise feed back).
 */
export function drawnSize(box: Size, intrinsic: Size, objectFit: string, devicePixelRatio: number): Size {
  const scaleToDevice = (size: Size) => ({
    width: Math.round(size.width * devicePixelRatio),
    height: Math.round(size.height * devicePixelRatio),
  })
  if (intrinsic.width <= 0 || intrinsic.height <= 0 || box.width <= 0 || box.height <= 0 || objectFit === 'fill') return scaleToDevice(box)
  const widthRatio = box.width / intrinsic.width
  const heightRatio = box.height / intrinsic.height
  // `none` and `scale-down` depend on the intrinsic size itself; read them as `contain`.
  const scale = objectFit === 'cover' ? Math.max(widthRatio, heightRatio) : Math.min(widthRatio, heightRatio)
  return scaleToDevice({ width: intrinsic.width * scale, height: intrinsic.height * scale })
}

interface Watched {
  trackId: TrackId
  video: HTMLVideoElement
  /** The last size sent (or being sent). */
  sent: Size | undefined
  timer: ReturnType<typeof setTimeout> | undefined
  onResize: () => void
}

/**
 * Reports the drawn size of each watched video: as soon as it is laid out, then after it
 * stops changing (element resized, or the stream's proportions changed). Equal sizes are not resent.
 */
export class VideoSizeReporter {
  readonly #send: SizeSink
  readonly #debounceMs: number
  readonly #watched = new Map<HTMLVideoElement, Watched>()
  readonly #observer: ResizeObserver

  constructor(send: SizeSink, { debounceMs = 300 }: VideoSizeReporterOptions = {}) {
    this.#send = send
    this.#debounceMs = debounceMs
    this.#observer = new ResizeObserver((entries) => {
      for (const entry of entries) {
        const watched = this.#watched.get(entry.target as HTMLVideoElement)
        if (watched !== undefined) this.#changed(watched)
      }
    })
  }

  /** Starts reporting `video`'s size for `trackId` (replacing what it reported before); returns the stop function. */
  watch(trackId: TrackId, video: HTMLVideoElement): () => void {
    this.unwatch(video)
    const watched: Watched = { trackId, video, sent: undefined, timer: undefined, onResize: () => this.#changed(watched) }
    this.#watched.set(video, watched)
    // The intrinsic proportions arrive with the first frame and change with a new stream.
    video.addEventListener('resize', watched.onResize)
    // Its first callback, after layout, gives the first report.
    this.#observer.observe(video)
    // Stops this watch only: the element may be watched for another track by then.
    return () => {
      if (this.#watched.get(video) === watched) this.unwatch(video)
    }
  }

  unwatch(video: HTMLVideoElement): void {
    const watched = this.#watched.get(video)
    if (watched === undefined) return
    this.#watched.delete(video)
    clearTimeout(watched.timer)
    video.removeEventListener('resize', watched.onResize)
    this.#observer.unobserve(video)
  }

  /** Stops watching everything. */
  close(): void {
    for (const video of [...this.#watched.keys()]) this.unwatch(video)
    this.#observer.disconnect()
  }

  #changed(watched: Watched): void {
    // The first report goes out at once: until it arrives the server sends the best layer.
    if (watched.sent === undefined) {
      this.#report(watched)
      return
    }
    clearTimeout(watched.timer)
    watched.timer = setTimeout(() => this.#report(watched), this.#debounceMs)
  }

  #report(watched: Watched): void {
    watched.timer = undefined
    if (this.#watched.get(watched.video) !== watched) return
    const { video } = watched
    const size = drawnSize(
      { width: video.clientWidth, height: video.clientHeight },
      { width: video.videoWidth, height: video.videoHeight },
      getComputedStyle(video).objectFit,
      globalThis.devicePixelRatio || 1,
    )
    // A detached or not yet laid out element measures 0x0; wait for a real size.
    if (size.width === 0 && size.height === 0 && !video.isConnected) return
    if (watched.sent !== undefined && watched.sent.width === size.width && watched.sent.height === size.height) return
    watched.sent = size
    this.#send(watched.trackId, size).catch((error: unknown) => {
      console.warn('conclave: reporting a video size failed', error)
    })
  }
}
