/**
 * Metric providers: the factory, and everything a caller (the analysis engine) needs.
 *
 * @example
 *   const provider = createProvider(metric.source, { measurements });
 *   const m = await provider.measure(
 *     { metric: metric.name, source: metric.source, args, service: "fraud-model",
 *       candidate: "v2", baseline: "v1", fromMs, toMs: now, now },
 *     AbortSignal.timeout(60_000),
 *   );
 */
import type { Dispatcher } from "undici";
import type { MetricSourceSpec } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import {
  BuiltinProvider,
  type BuiltinProviderOptions,
  type MeasurementsReader,
} from "./builtin/builtin-provider.js";
import { CommandProvider, type CommandProviderOptions } from "./command/command-provider.js";
import {
  PrometheusProvider,
  type PrometheusProviderOptions,
} from "./prometheus/prometheus-provider.js";
import { type MetricProvider, type ProviderSourceSpec, providerKind } from "./provider.js";
import { WebProvider, type WebProviderOptions } from "./web/web-provider.js";

export {
  BuiltinProvider,
  type BuiltinProviderOptions,
  type MeasurementsReader,
  type VersionWindow,
} from "./builtin/builtin-provider.js";
export {
  analysisEnv,
  CommandProvider,
  type CommandProviderOptions,
} from "./command/command-provider.js";
export {
  PrometheusProvider,
  type PrometheusProviderOptions,
} from "./prometheus/prometheus-provider.js";
export * from "./provider.js";
export { boundRaw } from "./support.js";
export { renderTemplate, resolveSource, type TemplateVars, templateVars } from "./template.js";
export { parseJsonPath } from "./web/json-path.js";
export { WebProvider, type WebProviderOptions } from "./web/web-provider.js";

/** What the providers need from the composition root. */
export interface ProviderDeps {
  /** The router's measurements; required for builtin sources. */
  measurements?: MeasurementsReader;
  /** undici dispatcher for prometheus and web (TLS options, a proxy); the global one by default. */
  dispatcher?: Dispatcher;
  builtin?: Omit<BuiltinProviderOptions, "measurements">;
  prometheus?: PrometheusProviderOptions;
  web?: WebProviderOptions;
  command?: CommandProviderOptions;
}

/**
 * The provider for `source`'s kind. An unknown or missing kind throws (`TURNOUT_ERR_RESOURCE_
 * INVALID`, never a silent default); a builtin source without `deps.measurements` throws too
 * (a wiring bug).
 */
export function createProvider(
  source: MetricSourceSpec | ProviderSourceSpec,
  deps: ProviderDeps = {},
): MetricProvider {
  const kind = providerKind(source);
  const http = deps.dispatcher ? { dispatcher: deps.dispatcher } : {};
  switch (kind) {
    case "builtin":
      if (!deps.measurements) {
        throw new TurnoutError(
          "TURNOUT_ERR_INTERNAL_BUG",
          "builtin metrics need the router's measurements, and none were given to createProvider",
        );
      }
      return new BuiltinProvider({ ...deps.builtin, measurements: deps.measurements });
    case "prometheus":
      return new PrometheusProvider({ ...http, ...deps.prometheus });
    case "web":
      return new WebProvider({ ...http, ...deps.web });
    case "command":
      return new CommandProvider(deps.command);
  }
}
