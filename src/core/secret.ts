const SALT_BYTES = 18; // 144 bits, 24 base64url characters

/** A login secret from the system's cryptographic RNG, in [A-Za-z0-9_-]. */
export function newSalt(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(SALT_BYTES))).toString("base64url");
}

/**
 * Compares two secrets in time that depends only on the expected one's length, so a guess learns
 * nothing. Every unit is compared and the differences OR-ed, with no early exit; no buffers are made,
 * because two Buffers per login were garbage enough to grow the heap (and RSS per browser) during
 * bursts of logins.
 */
export function sameSecret(given: string, expected: string): boolean {
  let diff = given.length ^ expected.length;
  // Past the end of `given`, charCodeAt is NaN, which `^` reads as 0: the length check already failed.
  for (let i = 0; i < expected.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return diff === 0;
}
