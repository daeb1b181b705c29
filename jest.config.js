// Jest over the TypeScript API. ts-jest transpiles only (type checking is `npm run typecheck`);
// test/setup.ts checks after every test that the live-tensor count is back at its baseline.
// MAMBA_TEST_JS=1 runs the precompiled JavaScript tests of the GPU bundle instead (no TypeScript there).
'use strict';
const compiled = process.env.MAMBA_TEST_JS === '1';
module.exports = {
  testEnvironment: 'node',
  roots: [compiled ? '<rootDir>/dist-test/test' : '<rootDir>/test'],
  testMatch: compiled ? ['**/*.test.js'] : ['**/*.test.ts'],
  setupFilesAfterEnv: [compiled ? '<rootDir>/dist-test/test/setup.js' : '<rootDir>/test/setup.ts'],
  transform: compiled ? {} : { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/test/tsconfig.json', isolatedModules: true }] },
  testTimeout: 120000,
};
