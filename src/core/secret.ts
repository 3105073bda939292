import { timingSafeEqual } from "node:crypto";

const SALT_BYTES = 18; // 144 bits, 24 base64url characters

/** A login secret from the system's cryptographic RNG, in [A-Za-z0-9_-]. */
export function newSalt(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(SALT_BYTES))).toString("base64url");
}

/** Compares two secrets in time that depends only on their lengths, so a guess learns nothing. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}
