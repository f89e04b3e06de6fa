// Runs every test/**/*.test.ts file with node's test runner (through tsx), or the files given.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = process.argv.length > 2 ? process.argv.slice(2) : find('test').sort();
// The Node that runs npm (a `node` package in devDependencies, used only by the conformance suite,
// would otherwise shadow it on PATH inside npm scripts).
const nodeBin = process.env.npm_node_execpath || process.execPath;
const r = spawnSync(
  nodeBin,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    // A test file's bound; the full-form chaos run (npm run chaos) needs more than the suite's 4 min.
    `--test-timeout=${Number(process.env.TEST_TIMEOUT_MS ?? 240_000)}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
