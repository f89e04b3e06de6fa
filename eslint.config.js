import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/**
 * The layers of src/, top to bottom; a folder may import its own files and those of lower layers
 * only (docs/architecture.md draws them). `cli/` (the admin command, on the stores) is the top
 * layer: nothing imports it. `fleet.ts` (the composition root) and `index.ts` sit above the others; errors, types, clock, logger, metrics and the other files at the top of src/ below them.
 */
const LAYERS = [
  ['cli', 'tasks'],
  ['http', 'legacy'],
  ['session'],
  ['ownership', 'streams'],
  ['transport'],
  ['bus', 'store', 'events', 'redis'],
];

/** One rule block per layer: the folders of higher layers (and the composition root) are off limits. */
const layerRules = LAYERS.map((folders, i) => {
  const above = LAYERS.slice(0, i).flat();
  // Fronts of one layer do not import each other either (legacy may use the HTTP helpers).
  if (folders.includes('http')) above.push('legacy');
  const patterns = [...above.map((f) => `../${f}/*`), '../fleet.js', '../index.js'];
  return {
    files: folders.map((f) => `src/${f}/**/*.ts`),
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: patterns, message: 'src/ layers import downwards only (see eslint.config.js)' },
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', '**/.tmp/**'] },
  js.configs.recommended,
  { files: ['**/*.mjs', '**/*.js'], languageOptions: { globals: globals.node } },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-empty': ['error', { allowEmptyCatch: false }],
    },
  },
  ...layerRules,
  {
    // The top of src/ (errors, types, clock, metrics, …) is below every folder.
    files: ['src/*.ts'],
    ignores: ['src/fleet.ts', 'src/index.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                './cli/*',
                './http/*',
                './legacy/*',
                './session/*',
                './ownership/*',
                './streams/*',
                './transport/*',
              ],
              message: 'the files at the top of src/ are below every layer folder (see eslint.config.js)',
            },
          ],
        },
      ],
    },
  },
  {
    // The reference server (its own package, app/) uses the library as its users do: through the
    // package root `mcp-fleet` only; no path out of app/ (it is built and shipped on its own).
    files: ['app/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['mcp-fleet/*', '**/src', '**/src/**', '../../*', '../../**'],
              message: "app/ imports the library through its package root ('mcp-fleet') only",
            },
          ],
        },
      ],
    },
  },
);
