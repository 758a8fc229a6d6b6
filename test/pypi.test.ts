// The PyPI format with the real clients: twine uploads, pip installs (wheels and sdists) into
// fresh virtualenvs, yanking as pip's resolver sees it. Missing twine or python3: fails under
// CI=true, skips loudly otherwise. HTTP-level details are in test/pypi-http.test.ts.
import test, { type ExecutionContext } from 'ava'
import { requireClient, run, type RunResult } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { buildDists, makeVenv, mustRun, pythonEnv, sharedPip, REQUIRES_PYTHON } from './helpers/pypi-project.ts'

const PROJECT = { name: 'Akm.Demo_Pkg', module: 'akm_demo' } // a name pip and the index must normalise

interface Clients { twine: string, python: string }

async function clients (t: ExecutionContext): Promise<Clients | undefined> {
  const twine = await requireClient(t, 'twine')
  const python = await requireClient(t, 'python3')
  return twine == null || python == null ? undefined : { twine, python }
}

async function twineUpload (c: Clients, node: TestNode, files: string[], opts: { password?: string, extra?: string[] } = {}): Promise<RunResult> {
  return await run(c.twine, ['upload', '--non-interactive', '--disable-progress-bar', ...(opts.extra ?? []),
    '--repository-url', `${node.url}/pypi/`, '-u', '__token__', '-p', opts.password ?? node.adminToken, ...files], { env: pythonEnv() })
}

/** `pip install` of `requirement` into a fresh virtualenv; returns the venv's python and pip's output. */
async function pipInstall (t: ExecutionContext, c: Clients, node: TestNode, requirement: string, flags: string[]): Promise<{ python: string, out: RunResult }> {
  const python = await makeVenv(t, c.python, { withPip: false })
  const out = await run(await sharedPip(c.python), ['-m', 'pip', '--python', python, 'install', '--no-cache-dir',
    '--index-url', `${node.url}/pypi/simple/`, ...flags, requirement], { env: pythonEnv() })
  return { python, out }
}

/** The version pip's resolver picks for `requirement`, without installing anything. */
async function resolvedVersion (c: Clients, node: TestNode, requirement: string): Promise<string> {
  const r = await mustRun(await sharedPip(c.python), ['-m', 'pip', 'install', '--dry-run', '--quiet', '--report', '-', '--ignore-installed',
    '--no-cache-dir', '--only-binary', ':all:', '--index-url', `${node.url}/pypi/simple/`, requirement])
  return JSON.parse(r.stdout).install[0].metadata.version
}

const runModule = async (python: string, n: number) =>
  (await mustRun(python, ['-c', `import ${PROJECT.module}; print(${PROJECT.module}.describe(${n}))`])).stdout.trim()

test.serial('twine uploads a wheel and an sdist; pip installs each, using PEP 658 metadata', async t => {
  const c = await clients(t)
  if (c == null) return
  const node = await startTestNode(t)
  const { wheel, sdist } = await buildDists(t, c.python, { ...PROJECT, version: '1.0.0' })

  const up = await twineUpload(c, node, [wheel, sdist])
  t.is(up.code, 0, up.stdout + up.stderr)
  t.regex(up.stdout, /Uploading akm_demo_pkg-1\.0\.0-py3-none-any\.whl/)
  t.regex(up.stdout, /Uploading akm_demo_pkg-1\.0\.0\.tar\.gz/)

  const fromWheel = await pipInstall(t, c, node, 'akm.demo-pkg', ['--only-binary', ':all:'])
  t.is(fromWheel.out.code, 0, fromWheel.out.stdout + fromWheel.out.stderr)
  t.regex(fromWheel.out.stdout, /Successfully installed akm[.-]demo-pkg-1\.0\.0/i)
  t.is(await runModule(fromWheel.python, 6), '1.0.0: 6*7=42')
  // pip read the core metadata file the index announced (PEP 658) before downloading the wheel.
  t.regex(node.output(), /"url":"\/pypi\/packages\/akm-demo-pkg\/akm_demo_pkg-1\.0\.0-py3-none-any\.whl\.metadata","status":200/)

  const fromSdist = await pipInstall(t, c, node, 'Akm_Demo.Pkg==1.0.0', ['--no-binary', ':all:', '--no-build-isolation'])
  t.is(fromSdist.out.code, 0, fromSdist.out.stdout + fromSdist.out.stderr)
  t.regex(fromSdist.out.stdout, /Building wheel for Akm_Demo\.Pkg \(pyproject\.toml\): finished with status 'done'/, 'pip built the sdist')
  t.is(await runModule(fromSdist.python, 5), '1.0.0: 5*7=35')
  t.regex(node.output(), /"url":"\/pypi\/packages\/akm-demo-pkg\/akm_demo_pkg-1\.0\.0\.tar\.gz","status":200/)

  // The index told pip the Requires-Python it enforces.
  const doc = await (await fetch(`${node.url}/pypi/simple/akm-demo-pkg/`, { headers: { Accept: 'application/vnd.pypi.simple.v1+json' } })).json() as any
  t.true(doc.files.every((f: any) => f['requires-python'] === REQUIRES_PYTHON))
})

test.serial('a yanked version is skipped by the resolver but an == pin still installs it', async t => {
  const c = await clients(t)
  if (c == null) return
  const node = await startTestNode(t)
  const v1 = await buildDists(t, c.python, { ...PROJECT, version: '1.0.0' })
  const v2 = await buildDists(t, c.python, { ...PROJECT, version: '1.1.0' })
  const up = await twineUpload(c, node, [v1.wheel, v2.wheel])
  t.is(up.code, 0, up.stdout + up.stderr)
  t.is(await resolvedVersion(c, node, 'akm.demo-pkg'), '1.1.0')

  const yank = await fetch(`${node.url}/pypi/-/yank/akm-demo-pkg/1.1.0`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${node.adminToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ reason: 'broken build' })
  })
  t.is(yank.status, 200)
  t.is(await resolvedVersion(c, node, 'akm.demo-pkg'), '1.0.0')

  const pinned = await pipInstall(t, c, node, 'akm.demo-pkg==1.1.0', [])
  t.is(pinned.out.code, 0, pinned.out.stdout + pinned.out.stderr)
  t.regex(pinned.out.stderr, /yanked.*Reason for being yanked: broken build/s, 'pip warns about the yanked pin')
  t.is(await runModule(pinned.python, 3), '1.1.0: 3*7=21')

  const unyank = await fetch(`${node.url}/pypi/-/unyank/akm-demo-pkg/1.1.0`, { method: 'POST', headers: { Authorization: `Bearer ${node.adminToken}` } })
  t.is(unyank.status, 200)
  t.is(await resolvedVersion(c, node, 'akm.demo-pkg'), '1.1.0')
})

test.serial('twine shows the 409 of a duplicate, skips it with --skip-existing, and the 401 of a bad token', async t => {
  const c = await clients(t)
  if (c == null) return
  const node = await startTestNode(t)
  const { wheel } = await buildDists(t, c.python, { ...PROJECT, version: '2.0.0' })
  t.is((await twineUpload(c, node, [wheel])).code, 0)

  const again = await twineUpload(c, node, [wheel])
  t.not(again.code, 0)
  const shown = again.stdout + again.stderr
  t.regex(shown, /409 Conflict/)
  t.regex(shown, /File already exists: akm_demo_pkg-2\.0\.0-py3-none-any\.whl/)

  const skipped = await twineUpload(c, node, [wheel], { extra: ['--skip-existing'] })
  t.is(skipped.code, 0, skipped.stdout + skipped.stderr)
  t.regex(skipped.stdout + skipped.stderr, /Skipping akm_demo_pkg-2\.0\.0-py3-none-any\.whl/)

  const denied = await twineUpload(c, node, [wheel], { password: 'akm_' + 'x'.repeat(43) })
  t.not(denied.code, 0)
  t.regex(denied.stdout + denied.stderr, /401 Unauthorized/)
})
