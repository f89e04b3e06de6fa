import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** `true` when the module with this `import.meta.url` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return moduleUrl === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false; // argv[1] is not a file (e.g. `node -e`): not us
  }
}
