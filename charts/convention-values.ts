/**
 * Every chart convention value away from its default at once (docs/chart.md's
 * OpenShift recipe among them): the chart tests render them, and the e2e
 * suite applies what they render to the real apiserver.
 */
export const CONVENTIONS = {
  webhook: {
    podSecurityContext: { runAsUser: null, runAsGroup: null, fsGroup: null },
    securityContext: { runAsUser: null, runAsGroup: null },
    nodeSelector: { "kubernetes.io/os": null, "node-role.example/system": "true" },
    extraEnv: [
      { name: "NODE_OPTIONS", value: "--max-old-space-size=200" },
      { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    ],
    extraVolumes: [{ name: "scratch", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } }],
    extraVolumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
    podLabels: { team: "security" },
    podAnnotations: { "example.com/owner": "security" },
    configurationAnnotations: { "example.com/owner": "security" },
  },
  metrics: {
    serviceMonitor: {
      enabled: true,
      interval: "45s",
      scrapeTimeout: "20s",
      labels: { release: "kube-prometheus-stack" },
    },
  },
  serviceAccount: { create: false, name: "akv-webhook" },
};
