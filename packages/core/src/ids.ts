import { randomBytes, randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase

/**
 * Sortable, prefixed ids (`agt_01j…`): 10 characters of millisecond time then 16 of
 * randomness, 26 in all, so ids sort by creation time and index well.
 *
 * The randomness comes from the CSPRNG as randomBytes does, drawn POOL bytes at a time
 * (each byte used once): a task makes a dozen ids, and one call into the CSPRNG per id
 * cost more than the rest of making it. The time part is encoded once per millisecond.
 */
export function newId(prefix: IdPrefix): string {
  const now = Date.now();
  if (now !== lastMs) {
    let t = now;
    let time = "";
    for (let i = 0; i < 10; i++) {
      time = ALPHABET[t % 32]! + time;
      t = Math.floor(t / 32);
    }
    lastMs = now;
    lastTime = time;
  }
  if (used + 16 > POOL) {
    randomFillSync(pool);
    used = 0;
  }
  let rand = "";
  for (let i = 0; i < 16; i++) rand += ALPHABET[pool[used + i]! % 32];
  used += 16;
  return `${prefix}_${lastTime}${rand}`;
}

/**
 * `bytes` random bytes as lowercase hex, from the same pool as newId: a run's trace and
 * span ids (two calls into the CSPRNG a run were ~2.5% of the worker's Node time in the
 * execution bench).
 */
export function randomHex(bytes: number): string {
  if (bytes > POOL) return randomBytes(bytes).toString("hex");
  if (used + bytes > POOL) {
    randomFillSync(pool);
    used = 0;
  }
  const hex = pool.toString("hex", used, used + bytes);
  used += bytes;
  return hex;
}

const POOL = 4096;
const pool = Buffer.alloc(POOL);
let used = POOL;
let lastMs = -1;
let lastTime = "";

export type IdPrefix = "ten" | "usr" | "key" | "agt" | "aud" | "tsk" | "run" | "msg" | "wpt" | "bud" | "prc" | "chg" | "rsv" | "alr" | "pol" | "prp" | "mem" | "brd" | "mcp";

export const isId = (prefix: IdPrefix, value: string) => new RegExp(`^${prefix}_[0-9a-z]{26}$`).test(value);

/** Random text from the same alphabet, for secrets and lookup parts. */
export function randomToken(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 32];
  return out;
}
