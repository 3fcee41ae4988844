import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { AppError } from "../errors";

/**
 * Secrets at rest (MCP server env vars and headers): AES-256-GCM under the deployment's
 * BOSUN_SECRET_KEY (32 bytes, as 64 hex digits or base64). Stored as
 * `v1.<iv>.<tag>.<ciphertext>` in base64url; the tenant id is the additional data, so a
 * ciphertext copied to another tenant's row does not decrypt.
 */
export function parseSecretKey(value: string | undefined): Buffer | null {
  if (!value) return null;
  const v = value.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, "hex") : Buffer.from(v, "base64");
  if (key.length !== 32) throw new Error("BOSUN_SECRET_KEY must be 32 bytes: 64 hex digits or 44 characters of base64");
  return key;
}

/** The key from the environment, read when needed (`npm start` sets one from its data folder). */
export function secretKeyFromEnv(): Buffer | null {
  return parseSecretKey(process.env.BOSUN_SECRET_KEY);
}

function requireKey(): Buffer {
  const key = secretKeyFromEnv();
  if (!key) {
    throw new AppError("SERVICE_UNAVAILABLE", "secrets cannot be stored or used: this deployment has no BOSUN_SECRET_KEY (32 random bytes, hex or base64)");
  }
  return key;
}

export function encryptSecrets(tenantId: string, secrets: Record<string, string>): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", requireKey(), iv);
  cipher.setAAD(Buffer.from(tenantId));
  const ct = Buffer.concat([cipher.update(JSON.stringify(secrets), "utf8"), cipher.final()]);
  return ["v1", iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ct.toString("base64url")].join(".");
}

export function decryptSecrets(tenantId: string, stored: string | null): Record<string, string> {
  if (!stored) return {};
  const [v, iv, tag, ct] = stored.split(".");
  if (v !== "v1" || !iv || !tag || ct === undefined) throw new AppError("SERVICE_UNAVAILABLE", "stored secrets are in an unknown format");
  try {
    const d = createDecipheriv("aes-256-gcm", requireKey(), Buffer.from(iv, "base64url"));
    d.setAAD(Buffer.from(tenantId));
    d.setAuthTag(Buffer.from(tag, "base64url"));
    return JSON.parse(Buffer.concat([d.update(Buffer.from(ct, "base64url")), d.final()]).toString("utf8")) as Record<string, string>;
  } catch {
    throw new AppError("SERVICE_UNAVAILABLE", "stored secrets do not decrypt: BOSUN_SECRET_KEY is not the key they were stored with");
  }
}
