// A tiny pure-Python project, built into a wheel and an sdist with no network: its build backend
// is in the tree (PEP 517 backend-path) and uses only the standard library, so neither the build
// here nor pip's build of the sdist needs setuptools or wheel from an index.
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { run, type RunResult } from './clients.ts'
import { makeTempDir } from './node.ts'

export interface DemoProject {
  /** As written in the metadata: deliberately not normalised. */
  name: string
  version: string
  module: string
}

export const REQUIRES_PYTHON = '>=3.8, <4'

const BACKEND = `# PEP 517 build backend for the akmesh tests: standard library only.
import base64, hashlib, io, os, re, tarfile, zipfile

NAME = %NAME%
VERSION = %VERSION%
MODULE = %MODULE%
REQUIRES_PYTHON = %REQUIRES_PYTHON%
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dist():
    return re.sub(r"[-_.]+", "_", NAME).lower()


def _metadata():
    return ("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\nSummary: akmesh test package\\n"
            "Requires-Python: %s\\n\\nBuilt by the akmesh tests.\\n" % (NAME, VERSION, REQUIRES_PYTHON)).encode()


def _sources():
    for root, _, files in sorted(os.walk(os.path.join(HERE, MODULE))):
        for f in sorted(files):
            if f.endswith(".py"):
                full = os.path.join(root, f)
                with open(full, "rb") as fh:
                    yield os.path.relpath(full, HERE).replace(os.sep, "/"), fh.read()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist_info = "%s-%s.dist-info" % (_dist(), VERSION)
    files = list(_sources()) + [
        (dist_info + "/METADATA", _metadata()),
        (dist_info + "/WHEEL", b"Wheel-Version: 1.0\\nGenerator: akm_backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"),
    ]
    record = "".join(
        "%s,sha256=%s,%d\\n" % (p, base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode(), len(d))
        for p, d in files) + dist_info + "/RECORD,,\\n"
    name = "%s-%s-py3-none-any.whl" % (_dist(), VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files + [(dist_info + "/RECORD", record.encode())]:
            z.writestr(p, d)
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (_dist(), VERSION)
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as fh:
        pyproject = fh.read()
    with open(os.path.abspath(__file__), "rb") as fh:
        backend = fh.read()
    members = list(_sources()) + [("pyproject.toml", pyproject), ("_backend/akm_backend.py", backend), ("PKG-INFO", _metadata())]
    with tarfile.open(os.path.join(sdist_directory, base + ".tar.gz"), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for p, d in members:
            info = tarfile.TarInfo(base + "/" + p)
            info.size = len(d)
            info.mode = 0o644
            t.addfile(info, io.BytesIO(d))
    return base + ".tar.gz"
`

const PYPROJECT = `[build-system]
requires = []
build-backend = "akm_backend"
backend-path = ["_backend"]
`

/** Writes the project; its module's `describe(n)` returns "<version>: <n>*7=<n*7>". */
export async function writeProject (dir: string, p: DemoProject): Promise<void> {
  await mkdir(join(dir, '_backend'), { recursive: true })
  await mkdir(join(dir, p.module), { recursive: true })
  await writeFile(join(dir, 'pyproject.toml'), PYPROJECT)
  await writeFile(join(dir, '_backend/akm_backend.py'), BACKEND
    .replace('%NAME%', JSON.stringify(p.name)).replace('%VERSION%', JSON.stringify(p.version))
    .replace('%MODULE%', JSON.stringify(p.module)).replace('%REQUIRES_PYTHON%', JSON.stringify(REQUIRES_PYTHON)))
  await writeFile(join(dir, p.module, '__init__.py'),
    `__version__ = ${JSON.stringify(p.version)}\n\n\ndef describe(n):\n    return "%s: %d*7=%d" % (__version__, n, n * 7)\n`)
}

/** An environment for Python tools that ignores this machine's pip configuration (extra indexes,
 *  find-links, constraints): the registry under test must be the only source. */
export function pythonEnv (): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {}
  for (const key of Object.keys(process.env)) if (/^(PIP|TWINE|PYTHON)/.test(key)) env[key] = undefined
  return { ...env, PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONDONTWRITEBYTECODE: '1' }
}

export async function mustRun (cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  const r = await run(cmd, args, { ...opts, env: pythonEnv() })
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${r.stdout}\n${r.stderr}`)
  return r
}

/** Builds the wheel and the sdist of a project by calling its backend, as a build frontend does. */
export async function buildDists (t: ExecutionContext, python: string, p: DemoProject): Promise<{ wheel: string, sdist: string }> {
  const dir = await makeTempDir(t, 'akmesh-pyproj-')
  await writeProject(dir, p)
  const out = join(dir, 'dist')
  await mkdir(out)
  await mustRun(python, ['-c', 'import sys; sys.path.insert(0, "_backend"); import akm_backend as b; b.build_wheel(sys.argv[1]); b.build_sdist(sys.argv[1])', out], { cwd: dir })
  const files = await readdir(out)
  const wheel = files.find(f => f.endsWith('.whl'))
  const sdist = files.find(f => f.endsWith('.tar.gz'))
  if (wheel == null || sdist == null) throw new Error(`build produced ${files.join(', ')}`)
  return { wheel: join(out, wheel), sdist: join(out, sdist) }
}

/** A fresh virtualenv; returns its python. Without pip it is made in a fraction of the time;
 *  install into it with another pip's `--python`. */
export async function makeVenv (t: ExecutionContext, python: string, opts: { withPip?: boolean } = {}): Promise<string> {
  const dir = await makeTempDir(t, 'akmesh-venv-')
  await mustRun(python, ['-m', 'venv', ...(opts.withPip === false ? ['--without-pip'] : []), dir])
  return join(dir, 'bin/python')
}

let installer: Promise<string> | undefined
/** One virtualenv with pip, the installer for every install of a test file (creating a venv with
 *  pip costs seconds of CPU); each install goes into its own fresh venv without pip via
 *  `pip --python`. Removed when the test process exits. */
export async function sharedPip (python: string): Promise<string> {
  installer ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'akmesh-pip-'))
    process.once('exit', () => { rmSync(dir, { recursive: true, force: true }) })
    await mustRun(python, ['-m', 'venv', dir])
    return join(dir, 'bin/python')
  })()
  return await installer
}
