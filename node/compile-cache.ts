// Node's on-disk compile cache (https://nodejs.org/api/module.html#module-compile-cache) for the
// CLI: each command loads hundreds of modules (TypeScript stripped, then compiled), ~0.9 s of
// `akmesh export`'s start-up; with the cache warm the same start-up is ~0.55 s. Imported first by
// node/cli.ts, so it covers every module the commands load dynamically. The cache lives in
// $NODE_COMPILE_CACHE or <tmpdir>/node-compile-cache, is checked against each source file, and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off.
import { enableCompileCache } from 'node:module'

enableCompileCache()
