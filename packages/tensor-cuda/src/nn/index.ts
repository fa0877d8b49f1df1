// The `nn` namespace: Module machinery, the primitive layers and the functional API.
export { Module, ModuleList, Parameter, type StateDict, type StateDictSource } from "./module.js";
export { Conv2d, Dropout, Embedding, type FactoryOptions, GroupNorm, LayerNorm, Linear, RMSNorm } from "./layers.js";
export * as functional from "../functional.js";
