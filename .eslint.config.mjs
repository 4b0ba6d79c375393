// ESLint flat config. Named as a dotfile because the repository's top level is
// fixed (DESIGN.md); the npm script passes it with --config.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Packages that would make domain/ impure: it holds rules only (DESIGN.md, layout rule 4). */
const IMPURE = ['typeorm', 'tsyringe', 'nats', 'pkcs11js', 'pg'];

export default defineConfig(
  {
    ignores: ['**/dist/**', '**/node_modules/**', '**/*.js', '**/*.cjs', '**/*.mjs', '.keyhub-dev/**', 'bench-results/**'],
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    rules: {
      // DESIGN.md, Style: no `any`, no console output outside CLIs.
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['hub/src/cli/**/*.ts', 'hub/cli/**/*.ts', 'listener/src/cli/**/*.ts', 'test/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['hub/src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: IMPURE.map((name) => ({ name, message: 'domain/ is pure rules: no database, DI container, bus or HSM.' })),
          patterns: [{ group: ['**/store/**', '**/operations/**', '**/bus/**', '**/relay/**', '**/crypto/**'], message: 'domain/ depends on nothing of the hub but itself.' }],
        },
      ],
    },
  },
);
