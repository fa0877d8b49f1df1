// @pisces/trainer: training Pisces stages from recipes, with atomic checkpoints and bit-exact resume.
export { CheckpointError, checkpointName, latestCheckpoint, saveCheckpoint, type TrainerState, trimMetrics } from "./checkpoint.js";
export { type DecoderLossInput, decoderLoss, trainDecoder, withRollouts } from "./decoder-trainer.js";
export {
  DataError,
  type DataPosition,
  type DataSource,
  expandShardPattern,
  isImage,
  MAX_SHARD_MEMBER_BYTES,
  RecordStream,
  readManifest,
  SeededRandom,
} from "./data.js";
export { runTraining, type TrainerSpec, type TrainEvent, TrainingError, type TrainOptions } from "./loop.js";
export { MaskedImageModel, trainGenClip } from "./gen-clip-trainer.js";
export { trainPisces } from "./pisces-trainer.js";
export { siglipLoss, trainSiglip } from "./siglip-trainer.js";
export { trainVae, vaeLoss } from "./vae-trainer.js";
export { type Recipe, RecipeError, type RecipeJson, readRecipe, resolveRecipe } from "./recipe.js";
