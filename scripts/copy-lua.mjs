// Copies the Lua scripts next to the compiled code (they are read at run time, relative to it).
import { cpSync } from 'node:fs';
cpSync('src/redis/scripts', 'dist/src/redis/scripts', { recursive: true });
