// CPU time and resident memory of a process, from /proc (Linux): how much a recording costs.

import { readFile } from 'node:fs/promises'

export interface ProcessUsage {
  pid: number
  /** User plus system CPU time so far, in seconds. */
  cpuSeconds: number
  /** Resident set size, in bytes: counts shared libraries in full for every process. */
  rssBytes: number
  /**
   * Proportional set size, in bytes: shared pages split among the processes sharing them, so the
   * sum over several ffmpegs is what they take together.
   */
  pssBytes: number
}

/** Clock ticks per second of /proc/<pid>/stat; 100 on every Linux this runs on. */
const CLOCK_TICKS = 100

/** The process's usage, or undefined once it is gone. */
export async function processUsage(pid: number): Promise<ProcessUsage | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(fields[11])
    const stime = Number(fields[12])
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0)
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '')
    const pssKb = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? rssKb)
    return { pid, cpuSeconds: (utime + stime) / CLOCK_TICKS, rssBytes: rssKb * 1024, pssBytes: pssKb * 1024 }
  } catch {
    return undefined
  }
}
