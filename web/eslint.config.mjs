// ESLint for the web client (run by scripts/test): typescript-eslint's type-checked rules on the
// TypeScript (tsconfig.json), ESLint's recommended rules on the Node.js end-to-end test.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "pkg/", "node_modules/"] },
  {
    files: ["src/**/*.ts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    // The e2e test runs in Node.js, but the functions it hands to Playwright's page.evaluate run
    // in the page: both sets of globals are real there.
    files: ["tests/**/*.mjs", "*.mjs"],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
);
