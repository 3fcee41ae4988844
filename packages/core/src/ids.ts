import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lowercase

/**
 * Sortable, prefixed ids (`agt_01j…`): 10 characters of millisecond time then 16 of
 * randomness, 26 in all, so ids sort by creation time and index well.
 */
export function newId(prefix: IdPrefix): string {
  let t = Date.now();
  const time: string[] = [];
  for (let i = 0; i < 10; i++) {
    time.unshift(ALPHABET[t % 32]!);
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(16);
  let rand = "";
  for (let i = 0; i < 16; i++) rand += ALPHABET[bytes[i]! % 32];
  return `${prefix}_${time.join("")}${rand}`;
}

export type IdPrefix = "ten" | "usr" | "key" | "agt" | "aud" | "tsk" | "run" | "msg" | "wpt" | "bud" | "prc" | "chg" | "rsv" | "alr" | "pol" | "prp" | "mem" | "brd" | "mcp";

export const isId = (prefix: IdPrefix, value: string) => new RegExp(`^${prefix}_[0-9a-z]{26}$`).test(value);

/** Random text from the same alphabet, for secrets and lookup parts. */
export function randomToken(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 32];
  return out;
}
