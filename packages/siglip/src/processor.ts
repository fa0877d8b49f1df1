// SiglipProcessor: the tokenizer and the image processor of one checkpoint, as transformers'
// SiglipProcessor, so zero-shot classification is three lines:
//   const inputs = await processor.call({ text: labels, images: "cat.jpg" });
//   const { logitsPerImage } = model.forward(inputs);   // (images, labels)
//   const probs = logitsPerImage.sigmoid();
// Like transformers 5's SiglipProcessor, it returns an attention mask with the ids (0 on padding),
// and the model uses it when given.
import type { ImageInput, LoadOptions } from "@pisces/image";
import * as T from "@pisces/tensor-cuda";
import { SiglipImageProcessor } from "./image-processor.js";
import { type BatchEncodeOptions, SiglipTokenizer } from "./tokenizer.js";

/** What `call` returns: the fields a SiglipModel's forward takes. */
export interface SiglipInputs {
  inputIds?: T.Tensor;
  attentionMask?: T.Tensor;
  pixelValues?: T.Tensor;
}

type Texts = string | readonly string[];
type Images = ImageInput | readonly ImageInput[];
type CallOptions = BatchEncodeOptions & LoadOptions & { device?: T.Device };

/** Tokenizer and image processor together, as transformers' SiglipProcessor. */
export class SiglipProcessor {
  constructor(
    readonly tokenizer: SiglipTokenizer,
    readonly imageProcessor: SiglipImageProcessor,
  ) {}

  static fromPretrained(dir: string): SiglipProcessor {
    return new SiglipProcessor(SiglipTokenizer.fromPretrained(dir), SiglipImageProcessor.fromPretrained(dir));
  }

  /**
   * Texts -> inputIds (texts, length) int64, padded to `model_max_length` by default (SigLIP was
   * trained on max-length padding); images -> pixelValues (images, 3, H, W) float32.
   */
  call(input: { text: Texts; images: Images }, options?: CallOptions): Promise<Required<SiglipInputs>>;
  call(input: { text: Texts; images?: undefined }, options?: CallOptions): Promise<Required<Omit<SiglipInputs, "pixelValues">>>;
  call(input: { text?: undefined; images: Images }, options?: CallOptions): Promise<Required<Pick<SiglipInputs, "pixelValues">>>;
  call(input: { text?: Texts; images?: Images }, options?: CallOptions): Promise<SiglipInputs>;
  async call(input: { text?: Texts; images?: Images }, options: CallOptions = {}): Promise<SiglipInputs> {
    if (input.text === undefined && input.images === undefined) throw new TypeError("SiglipProcessor.call(): give text, images or both");
    const out: SiglipInputs = {};
    if (input.images !== undefined) out.pixelValues = (await this.imageProcessor.preprocess(input.images, options)).pixelValues;
    if (input.text !== undefined) {
      const texts = typeof input.text === "string" ? [input.text] : input.text;
      const { inputIds, attentionMask } = this.tokenizer.batchEncodeWithMask(texts, options);
      const width = Math.max(0, ...inputIds.map((r) => r.length));
      if (inputIds.some((r) => r.length !== width)) {
        out.pixelValues?.dispose();
        throw new RangeError('SiglipProcessor.call(): texts of different lengths need padding ("max_length" or "longest")');
      }
      out.inputIds = T.tensor(inputIds, { dtype: "int64", device: options.device });
      out.attentionMask = T.tensor(attentionMask, { dtype: "int64", device: options.device });
    }
    return out;
  }
}
