// From source only (tests, tsx): registers tsx in the worker thread, then loads the worker.
import { register } from "tsx/esm/api";

register();
await import("./worker.ts");
