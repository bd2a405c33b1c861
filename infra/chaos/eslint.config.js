export { default } from '@fed/eslint-config';
