/**
 * The largest resources the limits admit: every list and map at its maximum count, and
 * (where the 1 MiB document limit leaves room) the heaviest items, so that a test can check the
 * limits are consistent with each other (each maximum is reachable inside the document limit)
 * and `bench/validate.ts` can measure how long the worst accepted document takes.
 */
import { LIMITS } from "../src/resources/limits.js";

const n = (count: number) => Array.from({ length: count }, (_, i) => i);
const max = (name: keyof typeof LIMITS) => LIMITS[name].max;

const apiVersion = "turnout.dev/v1";

function metadata() {
  return {
    name: "largest",
    labels: Object.fromEntries(n(max("LABELS")).map((i) => [`example.com/l${i}`, `v${i}`])),
    annotations: Object.fromEntries(n(max("ANNOTATIONS")).map((i) => [`note-${i}`, "x"])),
  };
}

const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

/**
 * The step limit's worth of steps: heavy ones (analysis, experiment, shadow and match steps
 * with every list at its maximum) while `budget` bytes last, light ones after.
 */
function steps(budget: number): unknown[] {
  const analysis = {
    templates: n(max("TEMPLATES")).map((i) => `t${i}`),
    args: n(max("ARGS")).map((i) => ({ name: `a${i}`, value: "v" })),
  };
  const experiment = {
    arms: n(max("ARMS")).map((i) => ({
      name: `arm${i}`,
      version: i === 0 ? "stable" : i === 1 ? "canary" : `v${i}`,
      weight: 100 / max("ARMS"),
    })),
    assignment: { header: "x-user-id" },
    metrics: n(max("EXPERIMENT_METRICS")).map((i) => ({
      name: `m${i}`,
      kind: "binomial",
      source: { event: `e${i}` },
    })),
  };
  const match = { header: { name: "x-beta", regex: "^v\\d{1,3}$" }, pathPrefix: "/beta" };
  const shadow = {
    percent: 100,
    methods: ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
    sideEffectFree: true,
    stripHeaders: n(max("HEADER_LISTS")).map((i) => `x-h${i}`),
    compare: {
      headers: n(max("HEADER_LISTS")).map((i) => `x-h${i}`),
      ignore: n(max("IGNORE_PATHS")).map((i) => `$.a${i}[*].b`),
    },
    gate: { minSamples: 100, duration: "30d" },
  };
  const heavy = [
    { analysis },
    { experiment },
    { shadow },
    { setHeaderRoute: { match } },
    { setMirrorRoute: { percent: 5, match } },
  ];
  const light = [
    { setWeight: 33.3333 },
    { pause: { duration: "1h30m" } },
    { pause: {} },
    { setFlag: { flag: "f", percentage: 50 } },
  ];
  let left = budget - n(max("STEPS")).reduce((sum, i) => sum + bytes(light[i % 4]) + 1, 0);
  return n(max("STEPS")).map((i) => {
    const h = heavy[i % heavy.length]!;
    const l = light[i % light.length]!;
    const extra = bytes(h) - bytes(l);
    if (extra > left) return l;
    left -= extra;
    return h;
  });
}

/**
 * A Service with every list at its limit (process runtime, so command and env count too), its
 * steps as heavy as fit in the document limit less `room` bytes.
 */
export function largestService(room = 16 * 1024): Record<string, unknown> {
  const versions = Object.fromEntries(
    n(max("VERSIONS")).map((i) => [
      `v${i}`,
      i === 0 ? { env: Object.fromEntries(n(max("ENV")).map((j) => [`E${j}`, "1"])) } : {},
    ]),
  );
  const doc = {
    apiVersion,
    kind: "Service",
    metadata: metadata(),
    spec: {
      listen: { port: 8080 },
      stickiness: { header: "x-user-id" },
      routing: {
        matches: n(max("MATCHES")).map((i) => ({
          header: { name: "x-tenant", regex: `^t${i}-\\d{1,6}$` },
          cookie: { name: "c", equals: `t${i}` },
          pathPrefix: `/t/${i}`,
          to: i % 2 ? "canary" : "stable",
        })),
      },
      trafficPolicy: { healthCheck: {} },
      runtime: {
        process: {
          command: n(max("COMMAND_ARGS")).map((i) => (i === 0 ? "node" : `--a${i}`)),
          env: Object.fromEntries(n(max("ENV")).map((j) => [`E${j}`, "1"])),
          replicas: max("REPLICAS"),
          versions,
        },
      },
      version: "v1",
      flags: n(max("SERVICE_FLAGS")).map((i) => `f${i}`),
      strategy: {
        canary: {
          steps: [] as unknown[],
          analysis: { templates: ["bg"], startingStep: max("STARTING_STEP") },
        },
      },
    },
  };
  const spec = doc.spec as { strategy: { canary: { steps: unknown[] } } };
  spec.strategy.canary.steps = steps(LIMITS.DOCUMENT_BYTES.max - room - bytes(doc));
  return doc;
}

/** A static Service with every version at its upstream limit would pass 1 MiB: as many as fit. */
export function largestStaticService(): Record<string, unknown> {
  const perVersion = 180;
  return {
    apiVersion,
    kind: "Service",
    metadata: { name: "largest-static" },
    spec: {
      listen: { port: 8081 },
      runtime: {
        static: {
          versions: Object.fromEntries(
            n(max("VERSIONS")).map((i) => [
              `v${i}`,
              {
                upstreams: n(i === 0 ? max("UPSTREAMS") : perVersion).map(
                  (j) => `http://10.0.${i}.${j % 250}:${9000 + j}`,
                ),
              },
            ]),
          ),
        },
      },
      version: "v0",
    },
  };
}

export function largestAnalysisTemplate(): Record<string, unknown> {
  return {
    apiVersion,
    kind: "AnalysisTemplate",
    metadata: metadata(),
    spec: {
      args: n(max("ARGS")).map((i) => ({ name: `a${i}`, value: "v" })),
      metrics: n(max("TEMPLATE_METRICS")).map((i) => ({
        name: `m${i}`,
        interval: "1s",
        count: max("MEASUREMENTS"),
        failureLimit: max("MEASUREMENT_LIMIT"),
        source:
          i % 2
            ? { prometheus: { address: "http://prom:9090", query: "sum(rate(x[1m]))" } }
            : {
                web: {
                  url: "http://hook/v?x=1",
                  headers: Object.fromEntries(n(max("HEADER_LISTS")).map((j) => [`x-h${j}`, "v"])),
                  jsonPath: "$.data.value",
                },
              },
        judge: { threshold: { min: LIMITS.MEASURED_VALUE.min, max: LIMITS.MEASURED_VALUE.max } },
      })),
    },
  };
}

export function largestFlag(): Record<string, unknown> {
  const variants = Object.fromEntries(n(max("FLAG_VARIANTS")).map((i) => [`v${i}`, `value ${i}`]));
  const split = Object.fromEntries(
    n(max("FLAG_VARIANTS")).map((i) => [`v${i}`, 100 / max("FLAG_VARIANTS")]),
  );
  return {
    apiVersion,
    kind: "Flag",
    metadata: metadata(),
    spec: {
      type: "string",
      variants,
      defaultVariant: "v0",
      rules: n(max("FLAG_RULES")).map((i) =>
        i === 0
          ? {
              conditions: [
                { attribute: "id", op: "in", values: n(max("CONDITION_VALUES")).map(String) },
              ],
              segments: n(max("RULE_SEGMENTS")).map((j) => `s${j}`),
              split,
            }
          : {
              name: `r${i}`,
              conditions: n(i === 1 ? max("CONDITIONS") : 2).map((j) => ({
                attribute: "plan",
                op: j % 2 ? "matches" : "startsWith",
                value: j % 2 ? `^p${j}\\d{1,3}$` : `p${j}`,
              })),
              variant: `v${i % max("FLAG_VARIANTS")}`,
            },
      ),
    },
  };
}

export function largestSegment(): Record<string, unknown> {
  return {
    apiVersion,
    kind: "Segment",
    metadata: metadata(),
    spec: {
      included: n(max("SEGMENT_KEYS")).map((i) => `user-${i}`),
      excluded: n(max("SEGMENT_KEYS")).map((i) => `blocked-${i}`),
      conditions: n(max("CONDITIONS")).map((i) => ({
        attribute: "email",
        op: "endsWith",
        value: `@c${i}.example`,
      })),
    },
  };
}

export const LARGEST = {
  Service: largestService,
  "Service (static)": largestStaticService,
  AnalysisTemplate: largestAnalysisTemplate,
  Flag: largestFlag,
  Segment: largestSegment,
} as const;
