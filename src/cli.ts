#!/usr/bin/env node
/**
 * `sharedobject ls` lists this package's segments on the machine (changing nothing);
 * `sharedobject gc` frees the named ones whose owner died; `sharedobject free <id|handle>` frees
 * one. `--json` prints JSON instead of a table.
 */
import { parseArgs } from 'node:util'

import { free, list, sweep, type SegmentInfo } from './inspect'

function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (bytes >= 1024 && i < units.length - 1) {
    bytes /= 1024
    i++
  }
  return `${i === 0 ? bytes : bytes.toFixed(1)} ${units[i]}`
}

function table(rows: SegmentInfo[]): string {
  const head = ['ID', 'KIND', 'LENGTH', 'SIZE', 'OWNER', 'ALIVE', 'NAMED', 'PERSISTENT', 'CREATED']
  const body = rows.map((s) => [
    s.id,
    s.kind,
    String(s.length),
    size(s.size),
    String(s.ownerPid),
    s.ownerAlive === null ? '?' : s.ownerAlive ? 'yes' : 'no',
    s.named ? 'yes' : 'no',
    s.persistent || s.developer ? 'yes' : 'no',
    s.created.toISOString(),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)))
  return [head, ...body].map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}

function totals(rows: SegmentInfo[]): string {
  const bytes = rows.reduce((n, s) => n + s.size, 0)
  const dead = rows.filter((s) => s.ownerAlive === false)
  return `${rows.length} segment(s), ${size(bytes)}; ${dead.length} with a dead owner (${size(dead.reduce((n, s) => n + s.size, 0))})`
}

const usage = `usage: sharedobject <command> [options]

commands:
  ls                 list this package's segments on this machine (named ones, and on Linux the
                     unnamed ones this user's processes hold); changes nothing
  gc [--dry-run]     free the named segments whose owner process died (persistent ones are kept)
  free <id|handle>   free one segment now (views already mapped keep working)

options:
  --json             print JSON instead of a table
  --dry-run          gc: only report what would be freed
  -h, --help         show this help`

function main(argv: string[]): number {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { json: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    })
  } catch (e) {
    console.error(`sharedobject: ${(e as Error).message}\n\n${usage}`)
    return 2
  }
  const { values, positionals } = parsed
  const [cmd, ...rest] = positionals
  if (values.help || cmd === 'help') {
    console.log(usage)
    return 0
  }
  const json = values.json === true
  const wrongArgs = (n: number): boolean => {
    if (rest.length === n) return false
    console.error(`sharedobject ${cmd}: expected ${n} argument(s), got ${rest.length}\n\n${usage}`)
    return true
  }
  if (values['dry-run'] && cmd !== 'gc') {
    console.error(`sharedobject: --dry-run goes with gc\n\n${usage}`)
    return 2
  }
  switch (cmd) {
    case 'ls': {
      if (wrongArgs(0)) return 2
      const rows = list()
      console.log(json ? JSON.stringify(rows, null, 2) : rows.length ? `${table(rows)}\n\n${totals(rows)}` : 'no segments')
      return 0
    }
    case 'gc': {
      if (wrongArgs(0)) return 2
      const dry = values['dry-run'] === true
      const freed = sweep({ dryRun: dry })
      if (json) console.log(JSON.stringify(freed, null, 2))
      else if (!freed.length) console.log('nothing to free')
      else console.log(`${dry ? 'would free' : 'freed'} ${freed.length} segment(s):\n${table(freed)}`)
      return 0
    }
    case 'free': {
      if (wrongArgs(1)) return 2
      try {
        const removed = free(rest[0])
        if (json) console.log(JSON.stringify({ freed: removed }))
        else console.log(removed ? `freed ${rest[0]}` : `no segment ${rest[0]}`)
        return removed ? 0 : 1
      } catch (e) {
        console.error(`sharedobject free: ${(e as Error).message}`)
        return 1
      }
    }
    case undefined:
      console.error(usage)
      return 2
    default:
      console.error(`sharedobject: unknown command ${JSON.stringify(cmd)}\n\n${usage}`)
      return 2
  }
}

process.exitCode = main(process.argv.slice(2))
