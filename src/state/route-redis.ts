// Where a cluster's messages must go, kept in Redis by the scripts that change it.
//
// online (hash user → nodes) names the node(s) where the user has a browser: one node ID, as always
// with --sessions 1; with --sessions above 1 a user may have browsers on several nodes, and the value
// lists them, comma-separated ("a1b2,c3d4"; node IDs are base64url, never a comma). A user counts as
// online on each node listed; every script reads the value through online_nodes, so one node ID is
// the one-element list and the layout of --sessions 1 is unchanged.
//
// chnodes:C (hash node → count) says how many of each node's online users are members of channel C:
// exactly the users U with node in online[U] and C in uch:U. A shout is published only to the nodes it
// names (the node channel `to:NODE`, bus.ts), so a node with no browser in C never hears of it.
// Because every script that changes online[U] or uch:U adjusts the count in the same atomic step, a
// shout sent right after a [join]'s reply already reaches the joined browser's node: no subscription
// has to take effect first. The count is removed with its last user, and the entries of a node whose
// lease lapsed are removed by a live node's sweep (presence.ts); a lapsed node that is alive claims
// its users again, which counts them again.

/**
 * Lua: `route_move(p, user, from, to)` moves the user's channel memberships from node `from` to node
 * `to` in every chnodes:C (either may be false: a login, a logout). `p` is the key prefix.
 */
export const ROUTE_MOVE = `
local function route_move(p, user, from, to)
  if from == to then return end
  for _, ch in ipairs(redis.call('SMEMBERS', p .. 'uch:' .. user)) do
    if from then
      if redis.call('HINCRBY', p .. 'chnodes:' .. ch, from, -1) <= 0 then redis.call('HDEL', p .. 'chnodes:' .. ch, from) end
    end
    if to then redis.call('HINCRBY', p .. 'chnodes:' .. ch, to, 1) end
  end
end`;

/**
 * Lua: `online_nodes(value)` is the list of nodes an online hash value names (empty for false);
 * `online_value(list)` is the value for a list (false for an empty one, meaning: delete the entry).
 */
export const ONLINE_NODES = `
local function online_nodes(value)
  local out = {}
  if value then for node in string.gmatch(value, '[^,]+') do table.insert(out, node) end end
  return out
end
local function online_value(list)
  if #list == 0 then return false end
  return table.concat(list, ',')
end`;

/** Lua: `route_count(p, ch, node, delta)` adds `delta` to node's count in chnodes:ch (removed at zero). */
export const ROUTE_COUNT = `
local function route_count(p, ch, node, delta)
  if redis.call('HINCRBY', p .. 'chnodes:' .. ch, node, delta) <= 0 then redis.call('HDEL', p .. 'chnodes:' .. ch, node) end
end`;

/** The pub/sub channel of one node: everything aimed at its browsers (bus.ts's messages). */
export function nodeChannel(prefix: string, node: string): string {
  return `${prefix}to:${node}`;
}

/** The key of channel C's node counts. */
export function channelNodesKey(prefix: string, channel: number): string {
  return `${prefix}chnodes:${channel}`;
}
