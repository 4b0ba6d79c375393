export { KeystoreFile, type CommitResult } from './keystore-file';
export { ClearBytes } from './clear-bytes';
export * from './keystore-types';
