// The compliance suite over every format (test/compliance/suite.ts): spec-shaped requests against
// the app in this process, on real storage. A new format is one fixture and one line here.
import anyTest, { type TestFn } from 'ava'
import { genericFixture } from './compliance/generic.ts'
import { npmFixture } from './compliance/npm.ts'
import { ociFixture } from './compliance/oci.ts'
import { pypiFixture } from './compliance/pypi.ts'
import type { App } from './compliance/harness.ts'
import { complianceSuite } from './compliance/suite.ts'

const test = anyTest as TestFn<{ app: App }>

complianceSuite(test, [
  npmFixture,
  genericFixture,
  pypiFixture,
  ociFixture
])
