#!/usr/bin/env node
/**
 * `sharedobject ls` lists this package's segments on the machine; `sharedobject gc` frees the
 * ones whose owner died. `--json` prints JSON instead of a table.
 */
import { list, sweep, type SegmentInfo } from '../index'

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
  const head = ['ID', 'KIND', 'LENGTH', 'SIZE', 'OWNER', 'ALIVE', 'PERSISTENT', 'CREATED']
  const body = rows.map((s) => [
    s.id,
    s.kind,
    String(s.length),
    size(s.size),
    String(s.ownerPid),
    s.ownerAlive === null ? '?' : s.ownerAlive ? 'yes' : 'no',
    s.persistent || s.developer ? 'yes' : 'no',
    s.created.toISOString(),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)))
  return [head, ...body].map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}

const usage = `usage: sharedobject <command> [--json]
  ls    list this package's shared-memory segments on this machine
  gc    free the segments whose owner process died (persistent ones are kept)`

function main(argv: string[]): number {
  const json = argv.includes('--json')
  const cmd = argv.filter((a) => !a.startsWith('-'))[0]
  if (cmd === 'ls' || cmd === 'list') {
    const rows = list()
    console.log(json ? JSON.stringify(rows, null, 2) : rows.length ? table(rows) : 'no segments')
    return 0
  }
  if (cmd === 'gc' || cmd === 'sweep') {
    const freed = sweep()
    if (json) console.log(JSON.stringify(freed, null, 2))
    else console.log(freed.length ? `freed ${freed.length} segment(s):\n${table(freed)}` : 'nothing to free')
    return 0
  }
  if (cmd === undefined || cmd === 'help' || argv.includes('--help') || argv.includes('-h')) {
    console.log(usage)
    return cmd === undefined ? 1 : 0
  }
  console.error(`unknown command ${JSON.stringify(cmd)}\n${usage}`)
  return 2
}

process.exitCode = main(process.argv.slice(2))
