// Builds the production tree of the reference server in <out-dir>: the compiled library (dist/) and
// server (app/dist/), their package.json files and the lockfile, and `npm ci --omit=dev` there —
// production dependencies only, exactly the locked versions, no TypeScript, no tsx, no second Node
// binary. The Dockerfile runs this very script and copies the result into the image; CI starts the
// server from the same tree (test/package/package.test.ts).
//
//   node scripts/production-tree.mjs <out-dir> [--no-build]
//
// Start it with `node app/dist/main.js` in <out-dir>; the admin command is node_modules/.bin/mcp-fleet.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const [outArg, ...flags] = process.argv.slice(2);
if (!outArg || flags.some((f) => f !== '--no-build')) {
  process.stderr.write('usage: node scripts/production-tree.mjs <out-dir> [--no-build]\n');
  process.exit(2);
}
const out = resolve(outArg);

/** npm itself, on the Node that runs this script (an npm script's PATH may hold another `node`). */
function npm(args, cwd) {
  const cli = process.env.npm_execpath;
  const r = cli
    ? spawnSync(process.execPath, [cli, ...args], { cwd, stdio: 'inherit' })
    : spawnSync('npm', args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`production-tree: npm ${args.join(' ')} failed\n`);
    process.exit(r.status ?? 1);
  }
}

if (!flags.includes('--no-build')) npm(['run', 'build'], root);
for (const built of ['dist/src/index.js', 'app/dist/main.js']) {
  if (!existsSync(join(root, built))) {
    process.stderr.write(`production-tree: ${built} is missing (run npm run build)\n`);
    process.exit(1);
  }
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'app'), { recursive: true });
for (const file of ['package.json', 'package-lock.json', 'LICENSE', 'README.md', 'app/package.json']) {
  cpSync(join(root, file), join(out, file));
}
// Source maps stay: `node --enable-source-maps` then names the TypeScript lines in stack traces.
cpSync(join(root, 'dist/src'), join(out, 'dist/src'), { recursive: true });
cpSync(join(root, 'app/dist'), join(out, 'app/dist'), { recursive: true });
// No install scripts run: no production dependency needs one, and none may fetch anything.
npm(['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], out);
process.stdout.write(`production tree ready in ${out}: node app/dist/main.js\n`);
