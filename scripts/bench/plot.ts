import type { BenchResults } from "./run.ts";
export function renderPlots(_r: BenchResults): Record<string, string> { return {}; }
