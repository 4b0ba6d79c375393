// Moved to protocol/src/audit so that the operator CLI can verify the chain itself.
export * from '@keyhub/protocol/dist/audit/verify-chain';
