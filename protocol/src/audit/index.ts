export * from './chain-hash';
export * from './verify-chain';
export * from './export-format';
