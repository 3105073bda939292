// The in-memory state against the shared State contract.

import { MemoryState } from "../../src/state/memory.ts";
import { describeStateContract } from "./contract.ts";

describeStateContract("memory", { open: () => new MemoryState() });
