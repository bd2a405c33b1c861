// One lint policy for every workspace; each package's eslint.config.js re-exports it.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Generated code (migrations, resolver types) is checked by its own staleness checks and by tsc, not by lint.
  { ignores: ['**/node_modules/**', '**/dist/**', '**/.data/**', '**/drizzle/**', '**/src/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Only a composition root (src/index.ts or a CLI) reads process.env; everything else gets config injected.',
        },
      ],
    },
  },
  {
    files: ['**/src/index.ts', '**/src/testing/**', '**/src/cli/**', '**/src/cli.ts', '**/vitest.config.ts', '**/drizzle.config.ts', '**/test/**', '**/bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
