/** What the floor servers share: their environment, their answer and their "listening" line. */
import { writeSync } from "node:fs";

/**
 * The webhook's log line that `start.ts` waits for (no health port), written
 * to fd 1 as pino writes, since `console.log` would build `process.stdout`,
 * which the webhook never loads.
 */
export function announceListening(): void {
  writeSync(1, `${JSON.stringify({ msg: "listening", healthPort: 0 })}\n`);
}

export function floorEnv(): { certFile: string; keyFile: string; port: number } {
  const { AKV_INJECTOR_TLS_CERT_FILE, AKV_INJECTOR_TLS_KEY_FILE, AKV_INJECTOR_PORT } = process.env;
  if (!AKV_INJECTOR_TLS_CERT_FILE || !AKV_INJECTOR_TLS_KEY_FILE || !AKV_INJECTOR_PORT)
    throw new Error(
      "AKV_INJECTOR_TLS_CERT_FILE, AKV_INJECTOR_TLS_KEY_FILE and AKV_INJECTOR_PORT must be set",
    );
  return {
    certFile: AKV_INJECTOR_TLS_CERT_FILE,
    keyFile: AKV_INJECTOR_TLS_KEY_FILE,
    port: Number(AKV_INJECTOR_PORT),
  };
}

/** Allows the review in `body`, unchanged. */
export function allowedReview(body: unknown): unknown {
  const uid = (body as { request?: { uid?: unknown } } | null)?.request?.uid;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid: typeof uid === "string" ? uid : "", allowed: true },
  };
}
