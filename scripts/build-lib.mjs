// Builds the library into dist/ (what `npm pack` ships): a clean compile of src/, the Lua scripts next
// to the compiled code (they are read at run time, relative to it), and the CLI made executable.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';

// No stale output from deleted or renamed sources may reach the package.
rmSync('dist', { recursive: true, force: true });
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  // `npm ci --omit=dev` in a clone: nothing to compile with. Production trees are built differently.
  process.stderr.write(
    'mcp-fleet: TypeScript is not installed (dev dependencies omitted?). Build with a full `npm ci`;\n' +
      'for a production install of the reference server use `npm run production-tree -- <dir>` (docs/operations.md).\n',
  );
  process.exit(1);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
cpSync('src/redis/scripts', 'dist/src/redis/scripts', { recursive: true });
chmodSync('dist/src/cli/main.js', 0o755);
