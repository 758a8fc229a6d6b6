// Push and pull of a multi-layer image with skopeo: akmesh's OCI registry vs `skopeo copy` from
// the same OCI layout to a local `dir:` (the baseline: skopeo reading, verifying and writing the
// same bytes with no registry in between). Each run uses a fresh node (so the push really sends
// every layer) and a fresh destination directory.
//
//   node_modules/.bin/node bench/oci-push-pull.ts
//   env: BENCH_RUNS (default 3), BENCH_SIZE_MIB (image size, default 1024), BENCH_LAYERS (default 8),
//        AKMESH_BENCH_LOG_LEVEL (akmesh log level; default: the node's own default)
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { startAkmesh } from './lib/akmesh.ts'
import { main, run, tempDir, WORK_DIR } from './lib/proc.ts'
import { fmt, log, median, mib, ratio, table, timeMs } from './lib/stats.ts'
import { addImage, addLayer, writeLayout } from '../test/helpers/oci-image.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 1024) * 1024 * 1024
const LAYERS = Number(process.env.BENCH_LAYERS ?? 8)
const LAYOUT = join(WORK_DIR, 'oci', `${SIZE / 1024 / 1024}m-${LAYERS}l`)
const REF = 'bench'

/** The image, built once and kept under bench/.work: uncompressed tar layers of random bytes
 *  (compression would only measure gzip), a few files each. */
async function ensureLayout (): Promise<void> {
  if (existsSync(join(LAYOUT, 'index.json'))) return
  log(`building a ${mib(SIZE)} image of ${LAYERS} layers in ${LAYOUT}`)
  rmSync(LAYOUT, { recursive: true, force: true })
  mkdirSync(LAYOUT, { recursive: true })
  const perLayer = Math.floor(SIZE / LAYERS)
  const layers = []
  for (let i = 0; i < LAYERS; i++) {
    layers.push(await addLayer(LAYOUT, {
      [`layer${i}/big.bin`]: { random: perLayer - 8192 },
      [`layer${i}/small-a`]: { random: 4096 },
      [`layer${i}/etc/config`]: `layer ${i}\n`
    }, { gzip: false }))
  }
  const image = await addImage(LAYOUT, layers)
  await writeLayout(LAYOUT, { [REF]: image.manifest })
}

await main(async () => {
  await ensureLayout()
  const source = `oci:${LAYOUT}:${REF}`
  const times: Record<'baseline' | 'push' | 'pull', number[]> = { baseline: [], push: [], pull: [] }

  for (let i = 0; i < RUNS; i++) {
    const work = tempDir('oci')
    const dirOut = join(work, 'dir')
    const { ms: baseMs } = await timeMs(() => run('skopeo', ['copy', '--quiet', source, `dir:${dirOut}`]))
    times.baseline.push(baseMs)
    rmSync(dirOut, { recursive: true, force: true })

    const node = await startAkmesh()
    const host = new URL(node.url).host
    const target = `docker://${host}/docker/bench/image:${REF}`
    const { ms: pushMs } = await timeMs(() => run('skopeo', [
      'copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `admin:${node.token}`, source, target
    ]))
    times.push.push(pushMs)
    const { ms: pullMs } = await timeMs(() => run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', target, `dir:${dirOut}`]))
    times.pull.push(pullMs)
    await node.stop()
    rmSync(work, { recursive: true, force: true })
    log(`run ${i + 1}/${RUNS}: baseline ${fmt(baseMs / 1000)} s, push ${fmt(pushMs / 1000)} s, pull ${fmt(pullMs / 1000)} s`)
  }

  const base = median(times.baseline)
  const rows = [['operation', 'median s', 'MiB/s', 'vs baseline']]
  for (const [name, label] of [['baseline', 'skopeo copy oci: -> dir: (baseline)'], ['push', 'push oci: -> akmesh'], ['pull', 'pull akmesh -> dir:']] as const) {
    const ms = median(times[name])
    rows.push([label, fmt(ms / 1000), fmt(SIZE / 1024 / 1024 / (ms / 1000), 0), ratio(ms, base)])
  }
  console.log(`\nOCI push/pull with skopeo: ${mib(SIZE)} in ${LAYERS} layers, ${RUNS} runs (median)\n`)
  table(rows)
})
