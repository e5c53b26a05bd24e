import type { MeasurementSource } from "../measurements.js";
import type { MeasurementsReader } from "./builtin/builtin-provider.js";
type Assignable<A, B> = [A] extends [B] ? true : false;
true satisfies Assignable<MeasurementSource, MeasurementsReader>;
