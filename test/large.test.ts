// A 2 GiB generic upload and download through a real node while watching its memory: streaming
// must keep the node's resident set flat, whatever the size of the file.
import test from 'ava'
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { processMemory, startTestNode } from './helpers/node.ts'
import { MiB, deterministicStream, downloadSha256, rawRequest } from './helpers/streams.ts'

const SIZE = 2 * 1024 * MiB
const HEADROOM = 200 * MiB

/** Samples the process's RSS every ~200 ms while `work` runs. The kernel's own high-water mark
 *  (reset first through clear_refs) also catches a spike between two samples. */
async function watchMemory<T> (pid: number, work: () => Promise<T>): Promise<{ result: T, peak: number, seconds: number }> {
  // Resets VmHWM to the current RSS (Linux >= 4.0, own processes); else samples only.
  const hwmReset = await writeFile(`/proc/${pid}/clear_refs`, '5').then(() => true, () => false)
  let peak = 0
  let sampling = Promise.resolve()
  const sample = () => { sampling = processMemory(pid).then(m => { peak = Math.max(peak, m.rss) }, () => {}) }
  sample()
  const timer = setInterval(sample, 200)
  const start = performance.now()
  try {
    const result = await work()
    const seconds = (performance.now() - start) / 1000
    await sampling
    const { hwm } = await processMemory(pid)
    return { result, peak: hwmReset ? Math.max(peak, hwm) : peak, seconds }
  } finally {
    clearInterval(timer)
  }
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`

test('a 2 GiB file goes up and comes back with flat node memory and the same sha256', async t => {
  const node = await startTestNode(t)
  const auth = { Authorization: `Bearer ${node.adminToken}` }

  // Warm up every code path first so that the baseline includes them (and the digest workers).
  const warm = await rawRequest('PUT', `${node.url}/files/warm.bin`, { body: deterministicStream(8 * MiB, 'warm'), headers: auth })
  t.is(warm.status, 201)
  t.is((await downloadSha256(`${node.url}/files/warm.bin`)).status, 200)
  const baseline = (await processMemory(node.pid())).rss
  t.log(`baseline RSS ${mib(baseline)}`)

  const sent = createHash('sha256')
  const up = await watchMemory(node.pid(), async () => await rawRequest('PUT', `${node.url}/files/big/2g.bin`, {
    body: deterministicStream(SIZE, 'two-gibibytes', { hash: sent }),
    headers: auth
  }))
  const sentSha256 = sent.digest('hex')
  t.is(up.result.status, 201, up.result.body.toString())
  const info = JSON.parse(up.result.body.toString())
  t.is(info.size, SIZE)
  t.is(info.checksums.sha256, sentSha256)
  t.log(`upload:   peak RSS ${mib(up.peak)} (+${mib(up.peak - baseline)}), ${(SIZE / MiB / up.seconds).toFixed(0)} MiB/s, ${up.seconds.toFixed(1)} s`)

  const down = await watchMemory(node.pid(), async () => await downloadSha256(`${node.url}/files/big/2g.bin`))
  t.is(down.result.status, 200)
  t.is(down.result.size, SIZE)
  t.is(down.result.sha256, sentSha256)
  t.log(`download: peak RSS ${mib(down.peak)} (+${mib(down.peak - baseline)}), ${(SIZE / MiB / down.seconds).toFixed(0)} MiB/s, ${down.seconds.toFixed(1)} s`)

  t.true(up.peak < baseline + HEADROOM, `upload peak ${mib(up.peak)} exceeds baseline ${mib(baseline)} + ${mib(HEADROOM)}`)
  t.true(down.peak < baseline + HEADROOM, `download peak ${mib(down.peak)} exceeds baseline ${mib(baseline)} + ${mib(HEADROOM)}`)
})
