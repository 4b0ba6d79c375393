export * from './tmp';
export * from './nats';
export * from './softhsm';
export * from './postgres';
export { run, findExecutable, canConnect, type ExecResult } from './proc';
