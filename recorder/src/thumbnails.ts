// Thumbnails: one small JPEG every N seconds of the recorded MP4, made by ffmpeg after capture.

import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startChild } from './child-process.js'

/** Writes `thumbnails/0001.jpg`… under `workDir`; returns their names relative to it (none if ffmpeg fails). */
export async function makeThumbnails({ ffmpeg, mp4, workDir, everySeconds, width = 320 }: { ffmpeg: string; mp4: string; workDir: string; everySeconds: number; width?: number }): Promise<string[]> {
  const folder = join(workDir, 'thumbnails')
  await mkdir(folder, { recursive: true })
  const child = startChild('ffmpeg-thumbnails', ffmpeg, [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-i', mp4,
    '-vf', `fps=1/${everySeconds},scale=${width}:-2`, '-q:v', '5', join(folder, '%04d.jpg'),
  ])
  const exit = await child.exited
  if (exit.code !== 0) throw new Error(`ffmpeg could not make thumbnails: ${child.stderrTail()}`)
  return (await readdir(folder)).filter((name) => name.endsWith('.jpg')).sort().map((name) => `thumbnails/${name}`)
}
