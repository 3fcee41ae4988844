import argon2 from "argon2";

/** argon2id with the library's defaults (64 MiB, 3 passes), which OWASP accepts. */
export const hashPassword = (password: string) => argon2.hash(password, { type: argon2.argon2id });

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

// A hash to verify against when the user does not exist, so a login for an unknown email
// takes as long as one with a wrong password.
let dummy: Promise<string> | undefined;
export const dummyHash = () => {
  dummy ??= hashPassword("bosun-timing-equaliser");
  return dummy;
};
