import { shardTags } from "./shard-tags.ts";

// Where webtalk's Redis keys live. A key is a shard's tag followed by a name (`users`, `members:7`):
// on a single Redis there is one shard whose tag is the prefix itself, so every key is exactly
// `PREFIX + name`, the layout single-Redis deployments have always had; on a Redis Cluster there are
// SHARDS shards, each a hash tag `{PREFIX#k.n}` (shard-tags.ts), and a user or channel lives in the
// shard of its ID modulo their count (docs/internals/redis-cluster.md). Pure: no I/O.

/** Shards on a Redis Cluster: fixed, since an ID names its shard (ID mod SHARDS) forever. */
export const CLUSTER_SHARDS = 64;

export class ShardMap {
  readonly #names: ReadonlySet<string>;

  private constructor(
    /** Each shard's tag: the first `count` characters of all its keys. */
    readonly tags: readonly string[],
    /** The SCAN pattern that matches every key of every shard (and perhaps others: filter with `nameOf`). */
    readonly pattern: string,
  ) {
    this.#names = new Set(tags);
  }

  /** A single Redis: one shard, keys `PREFIX + name`. */
  static single(prefix: string): ShardMap {
    return new ShardMap([prefix], `${escapeGlob(prefix)}*`);
  }

  /** A Redis Cluster: CLUSTER_SHARDS hash tags spread evenly over the slots. */
  static cluster(prefix: string, count = CLUSTER_SHARDS): ShardMap {
    return new ShardMap(shardTags(prefix, count), `${escapeGlob(`{${prefix}#`)}*`);
  }

  get count(): number {
    return this.tags.length;
  }

  /** The shard of a user or channel ID; shard 0 for a number no ID can be (none exists there either). */
  of(id: number): number {
    return Number.isSafeInteger(id) && id >= 0 ? id % this.tags.length : 0;
  }

  key(shard: number, name: string): string {
    return this.tags[shard] + name;
  }

  /** The name after the shard's tag of one of this map's keys; undefined for a key of another prefix. */
  nameOf(key: string): string | undefined {
    if (this.tags.length === 1) return key.startsWith(this.tags[0]!) ? key.slice(this.tags[0]!.length) : undefined;
    const close = key.indexOf("}");
    return close > 0 && this.#names.has(key.slice(0, close + 1)) ? key.slice(close + 1) : undefined;
  }
}

/** Escapes the characters SCAN's MATCH treats as a pattern. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}
