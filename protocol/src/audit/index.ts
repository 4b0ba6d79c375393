export * from './chain-hash';
export * from './checkpoint-chain';
export * from './verify-chain';
export * from './verify-segment';
export * from './verify-ledger';
export * from './tamper-kind';
export * from './export-format';
export * from './witness-format';
