/** Times a job's work; periodic work is mostly database work, and timing it whole is what an operator sees as its latency. */
export type TimeJob = <T>(name: string, work: () => Promise<T>) => Promise<T>;

export const untimed: TimeJob = (_name, work) => work();
