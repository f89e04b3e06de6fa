// The package ships no types. It is the slot function ioredis itself routes Cluster commands with.
declare module 'cluster-key-slot' {
  /** The Redis Cluster slot (0 … 16383) of a key or channel name, hash tags honoured. */
  function calculateSlot(key: string | Buffer): number;
  export default calculateSlot;
}
