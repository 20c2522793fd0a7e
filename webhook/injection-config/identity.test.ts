import { describe, expect, it } from "vitest";
import { ServiceAccountAnnotation } from "../../common/names.ts";
import { CLIENT_ID, TENANT_ID, collectProblems, testParsedPod } from "../../testing/webhook.ts";
import { resolveClientId, resolveTenantId, type ServiceAccount } from "./identity.ts";

const OTHER_CLIENT = "11111111-2222-3333-4444-555555555555";
const CLIENT = ServiceAccountAnnotation.clientId;
const TENANT = ServiceAccountAnnotation.tenantId;
const account = (annotations: Record<string, string>, name?: string): ServiceAccount => ({
  metadata: { ...(name === undefined ? {} : { name }), annotations },
});

describe("resolveClientId", () => {
  // [case, pod annotations, service account, the client id, the problems]
  it.each<[string, Record<string, string>, ServiceAccount, string | undefined, string[]]>([
    ["the service account's", {}, account({ [CLIENT]: CLIENT_ID }), CLIENT_ID, []],
    ["the service account's, trimmed", {}, account({ [CLIENT]: ` ${CLIENT_ID} ` }), CLIENT_ID, []],
    [
      "the pod's over the service account's",
      { "akv-injector.io/client-id": OTHER_CLIENT },
      account({ [CLIENT]: CLIENT_ID }),
      OTHER_CLIENT,
      [],
    ],
    [
      "the pod's over a broken one on the service account",
      { "akv-injector.io/client-id": ` ${OTHER_CLIENT}` },
      account({ [CLIENT]: "broken" }),
      OTHER_CLIENT,
      [],
    ],
    [
      "a bad one on the pod, the service account's not used",
      { "akv-injector.io/client-id": "my-app" },
      account({ [CLIENT]: CLIENT_ID }),
      undefined,
      ['akv-injector.io/client-id: expected a client id (a GUID) (got "my-app")'],
    ],
    [
      "a bad one on the service account",
      {},
      account({ [CLIENT]: "nope" }, "app"),
      undefined,
      [
        'service account team-a/app annotation azure.workload.identity/client-id: expected a client id (a GUID) (got "nope")',
      ],
    ],
    [
      "a bad one on a service account of a long name: the key cut after 100 characters",
      {},
      account({ [CLIENT]: "nope" }, "s".repeat(200)),
      undefined,
      [
        `${`service account team-a/${"s".repeat(200)}`.slice(0, 100)}…: expected a client id (a GUID) (got "nope")`,
      ],
    ],
    [
      "none anywhere (a blank one on the service account is none)",
      {},
      account({ [CLIENT]: " " }, "app"),
      undefined,
      [
        "akv-injector.io/client-id: no client id: annotate service account team-a/app with azure.workload.identity/client-id, or the pod with akv-injector.io/client-id",
      ],
    ],
    [
      "none, the service account named after the pod's when it has no name",
      {},
      account({}),
      undefined,
      [
        "akv-injector.io/client-id: no client id: annotate service account team-a/app with azure.workload.identity/client-id, or the pod with akv-injector.io/client-id",
      ],
    ],
  ])("%s", (_case, annotations, serviceAccount, clientId, problems) => {
    const pod = testParsedPod(annotations);
    const result = collectProblems((list) => resolveClientId(pod, serviceAccount, list));
    expect(result.value).toBe(clientId);
    expect(result.problems).toEqual(problems);
  });
});

describe("resolveTenantId", () => {
  // [case, service account annotations, the tenant id, the problems]
  it.each<[string, Record<string, string>, string, string[]]>([
    ["unset: the webhook's", {}, TENANT_ID, []],
    ["blank: the webhook's", { [TENANT]: "  " }, TENANT_ID, []],
    ["the service account's GUID", { [TENANT]: CLIENT_ID }, CLIENT_ID, []],
    [
      "the service account's GUID in capitals, lowered",
      { [TENANT]: ` ${CLIENT_ID.toUpperCase()} ` },
      CLIENT_ID,
      [],
    ],
    [
      "a domain name on the service account",
      { [TENANT]: "contoso.onmicrosoft.com" },
      TENANT_ID,
      [
        'service account team-a/app annotation azure.workload.identity/tenant-id: expected the tenant\'s GUID, not a domain name (Key Vault names the tenant by GUID, and the Azure SDK compares the two as text) (got "contoso.onmicrosoft.com")',
      ],
    ],
    [
      "a bad one on the service account",
      { [TENANT]: "x/../y" },
      TENANT_ID,
      [
        'service account team-a/app annotation azure.workload.identity/tenant-id: expected the tenant\'s GUID (got "x/../y")',
      ],
    ],
  ])("%s", (_case, annotations, tenantId, problems) => {
    const pod = testParsedPod({ "akv-injector.io/tenant-id": "ignored" });
    const result = collectProblems((list) =>
      resolveTenantId(pod, account(annotations, "app"), TENANT_ID, list),
    );
    expect(result.value).toBe(tenantId);
    expect(result.problems).toEqual(problems);
  });
});
