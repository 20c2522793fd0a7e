import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet } from "jose";
import { describe, expect, it } from "vitest";
import { KeySetVerifier } from "./key-sets.ts";

async function signer(kid: string): Promise<{ jwks: JSONWebKeySet; sign(): Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = await exportJWK(publicKey);
  return {
    jwks: { keys: [{ ...jwk, kid, alg: "RS256", use: "sig" }] },
    sign: () =>
      new SignJWT({ sub: "x" }).setProtectedHeader({ alg: "RS256", kid }).sign(privateKey),
  };
}

describe("KeySetVerifier", () => {
  it("accepts a token signed by a key of the set, again and again", async () => {
    const a = await signer("a");
    const verifier = new KeySetVerifier();
    for (let i = 0; i < 3; i++) await verifier.verify(await a.sign(), a.jwks);
  });

  it("follows a rotated set under the same kid: the old key's tokens fail, the new one's pass", async () => {
    const before = await signer("k");
    const after = await signer("k");
    const verifier = new KeySetVerifier();
    await verifier.verify(await before.sign(), before.jwks);
    await expect(verifier.verify(await before.sign(), after.jwks)).rejects.toThrow(
      /signature verification failed/,
    );
    await verifier.verify(await after.sign(), after.jwks);
  });

  it("refuses a token whose kid the set lacks", async () => {
    const a = await signer("a");
    const b = await signer("b");
    await expect(new KeySetVerifier().verify(await b.sign(), a.jwks)).rejects.toThrow(
      /no applicable key found/i,
    );
  });
});
