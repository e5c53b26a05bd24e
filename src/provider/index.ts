/** The in-process OpenFeature server provider (see turnout-provider.ts). */
export { TurnoutProvider, type TurnoutProviderOptions } from "./turnout-provider.js";
