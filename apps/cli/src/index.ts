// @pisces/cli: the `pisces` command (src/cli.ts) and the evaluation it runs, for scripts.
export { buildProgram, CliError, main } from "./cli.js";
export { evalDecoderCeiling, evalGeneval, evalRollout, evalVqa, type GenevalOptions, pngToRgb } from "./eval.js";
