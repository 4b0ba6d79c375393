import 'reflect-metadata';
export * from './errors';
export * from './logger';
export * from './secrets';
export * from './kcv';
export * from './hsm/hsm';
export * from './hsm/pkcs11-hsm';
export * from './hsm/config';
export * from './public-keys';
