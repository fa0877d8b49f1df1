import { evalRollout } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
T.setNumThreads(1);
const dir = process.argv[2]!;
const model = PiscesForConditionalGeneration.fromPretrained(dir);
console.log(dir, await evalRollout(model, { scenes: 32, captions: (process.argv[3] as "short" | "detailed") ?? "short" }));
model.dispose();
