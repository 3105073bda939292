// What a cluster's delivery needs from presence, on a single Redis (presence.ts) or a Redis Cluster
// (redis-cluster-presence.ts): the same rules, two layouts.

/** This node's side that presence asks about. */
export interface PresenceLocal {
  users(): Iterable<number>;
  stats(): Record<string, number>;
  /** The user logged in on another node while this node's lease had lapsed: close its browser here. */
  replaced(user: number): void;
}

export interface Presence {
  readonly nodeId: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Calls `listener` after this node claimed its users again (a lapse or an outage). */
  onReclaimed(listener: () => void): void;
  isOnline(user: number): Promise<boolean>;
  /** Marks the user online here; true when a browser of theirs on another live node was told to close. */
  claim(user: number, replaced: string): Promise<boolean>;
  /** --sessions above 1: online here too; true when already online on another live node. */
  claimAlso(user: number): Promise<boolean>;
  /** claimAlso counting sess:U; undefined when refused under reject. */
  claimLimited(user: number, member: string, limit: number, reject: boolean): Promise<boolean | undefined>;
  /** No longer online here; true when still online on another live node. */
  release(user: number): Promise<boolean>;
  onlineCount(): Promise<number>;
  onlineIn(channel: number): Promise<number>;
  nodeStats(): Promise<Record<string, number>[]>;
}
