// What /dev/shm holds before sharedobject loads. run.mjs imports this module ahead of the
// package because loading the package sweeps segments of dead owners: a listing taken after
// the import could not show what the run itself removed.
import fs from 'node:fs'

export const SHM_DIR = '/dev/shm'

export function shmEntries() {
  try {
    return fs.readdirSync(SHM_DIR).sort()
  } catch {
    return [] // no /dev/shm: nothing to compare
  }
}

export const shmBefore = shmEntries()
