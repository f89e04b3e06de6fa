import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

/**
 * The layers of src/, top to bottom; a folder may import its own files and those of lower layers
 * only (docs/architecture.md draws them). `fleet.ts` (the composition root) and `index.ts` sit above
 * them all; errors, types, clock, logger, metrics and the other files at the top of src/ below them.
 */
const LAYERS = [
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
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tmp/**'] },
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
    // The reference server uses the library as its users do: through the package root only.
    files: ['app/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/*', '**/src/**', '!**/src/index.js'],
              message: 'app/ imports the library through its package root (src/index.js) only',
            },
          ],
        },
      ],
    },
  },
);
