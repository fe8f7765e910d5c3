// Where the complete top-level ISO BMFF boxes of a growing MP4 end: uploading only whole boxes keeps
// every committed prefix of a fragmented MP4 playable. Format only.

import type { FileHandle } from 'node:fs/promises'

/**
 * The offset after the last top-level box that lies wholly within `[from, fileSize)`, starting at
 * the box boundary `from`. A box still being written (or a size of 0, "to the end") stops the walk.
 */
export async function completeBoxesEnd(file: FileHandle, from: number, fileSize: number): Promise<number> {
  const header = Buffer.alloc(16)
  let offset = from
  while (offset + 8 <= fileSize) {
    const { bytesRead } = await file.read(header, 0, 16, offset)
    if (bytesRead < 8) break
    let size = header.readUInt32BE(0)
    if (size === 1) {
      if (bytesRead < 16) break
      size = Number(header.readBigUInt64BE(8))
    }
    if (size < 8 || offset + size > fileSize) break
    offset += size
  }
  return offset
}
