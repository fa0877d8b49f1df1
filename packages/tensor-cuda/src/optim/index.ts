// The `optim` namespace.
export { AdamW, type AdamWOptions, clipGradNorm, Optimizer, type ParamGroup, SGD, type SGDOptions } from "./optimizer.js";
export { getConstantScheduleWithWarmup, getCosineScheduleWithWarmup, LambdaLR } from "./schedulers.js";
