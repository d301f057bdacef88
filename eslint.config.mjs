// One JavaScript/TypeScript linter for the façade, the CLI, tests, demo and bench.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import globals from 'globals'

export default tseslint.config(
  {
    ignores: ['node_modules/', 'target/', 'npm/', 'dist/', 'docs/api/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // CommonJS files (the README's examples are CommonJS) may require().
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
)
