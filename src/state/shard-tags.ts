// Hash slots as Redis Cluster computes them, and the hash tags of webtalk's shards (the layout in
// docs/internals/redis-cluster.md). Pure: strings in, numbers and strings out.

/** Redis Cluster's slot count. */
export const SLOTS = 16_384;

/** CRC16-XMODEM (polynomial 0x1021, initial 0) by table: what Redis uses for key slots. */
const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

/**
 * The slot of `key`: only the part between the first `{` and the next `}` counts when that part is not
 * empty (a hash tag), so keys that share a tag share a slot.
 */
export function keySlot(key: string): number {
  const bytes = new TextEncoder().encode(key);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(bytes) % SLOTS;
}

/**
 * `count` hash tags for the shards of `prefix`, the k-th in the k-th of `count` equal ranges of slots,
 * so the shards spread evenly over masters that split the slots evenly (as `redis-cli --cluster
 * create` does). Each is `{PREFIX#k.n}` with the first n that lands in range: the same for every node.
 */
export function shardTags(prefix: string, count: number): string[] {
  const tags: string[] = [];
  for (let k = 0; k < count; k++) {
    const low = Math.floor((k * SLOTS) / count);
    const high = Math.floor(((k + 1) * SLOTS) / count);
    for (let n = 0; ; n++) {
      const tag = `{${prefix}#${k}.${n}}`;
      const slot = keySlot(tag);
      if (slot >= low && slot < high) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}
