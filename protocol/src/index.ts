export * from './subjects';
export * from './errors';
export * from './canonical';
export * from './limits';
export * from './messages';
export * from './envelope';
export * from './merkle';
export * from './fingerprint';
