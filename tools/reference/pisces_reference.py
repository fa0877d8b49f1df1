"""PyTorch reference of Pisces for @pisces/model and @pisces/sampler, written from docs (PISCES.md and
packages/model/README.md) on transformers' LlamaForCausalLM, SiglipVisionModel, CLIPVisionModel and
diffusers' UNet2DConditionModel / AutoencoderKL / EulerDiscreteScheduler.

  python3 tools/reference/pisces_reference.py OUT_DIR
      builds tiny random Pisces folders (OUT_DIR/<config>/model/, the layout of @pisces/model) for two
      configs (tied embeddings, k = 2, feature layers -1 / untied, k = 4, feature layers -2), a mixed
      batch (captioning + generation, right-padded), and dumps OUT_DIR/<config>/reference.safetensors
      + reference.json: the batch, losses, gradients of the three MLPs and of LLM layer 0, the
      generated vectors (conditional and empty caption, one left-padded batch), greedy caption
      tokens, and a 4-step guided Euler decode from fixed initial noise.
  python3 tools/reference/pisces_reference.py check FOLDER REFERENCE_DIR
      loads a Pisces folder (e.g. written by savePretrained) with this reference and checks that its
      losses on the stored batch equal the reference's; exit status 1 if not.
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM,
                          PreTrainedTokenizerFast, SiglipImageProcessorPil, SiglipVisionConfig, SiglipVisionModel)

GENERATION_PROMPT = "Please generate an image based on the following caption: {caption}"
CAPTIONING_PROMPT = "Please provide a detailed description of the given image."
IMG, END_IMG = "[IMG]", "[/IMG]"

CONFIGS = {
    # tied embeddings, gen-CLIP 8x8 grid pooled 2x2 -> 16 vectors, last layers
    "tied_k2": dict(tie=True, image_size=32, siglip_patch=8, clip_patch=4, k=2, und_layer=-1, gen_layer=-1, clip_width=16, seed=0),
    # untied, 32x32 grid pooled 4x4 -> 64 vectors, penultimate layers
    "untied_k4": dict(tie=False, image_size=64, siglip_patch=8, clip_patch=2, k=4, und_layer=-2, gen_layer=-2, clip_width=24, seed=1),
}


class Projector(nn.Module):
    """Linear, GELU, Linear (the three Pisces MLPs)."""

    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.linear_1 = nn.Linear(d_in, d_hidden)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class Pisces(nn.Module):
    def __init__(self, config, siglip, gen_clip):
        super().__init__()
        self.config = config
        text = LlamaConfig(**config["text_config"])
        self.language_model = LlamaForCausalLM(text)
        C = text.hidden_size
        self.understanding_projector = Projector(siglip.config.hidden_size, C, C)
        self.generation_projector = Projector(gen_clip.config.hidden_size, C, C)
        self.generation_head = Projector(C, C, gen_clip.config.hidden_size)
        # frozen encoders: kept out of the trained state dict (their own folders)
        object.__setattr__(self, "siglip", siglip)
        object.__setattr__(self, "gen_clip", gen_clip)

    # ---- encoders (frozen, no grad) ----
    def understanding_features(self, pixel_values):
        with torch.no_grad():
            return self.siglip(pixel_values=pixel_values, output_hidden_states=True).hidden_states[self.config["understanding_feature_layer"]]

    def generation_targets(self, pixel_values):
        with torch.no_grad():
            h = self.gen_clip(pixel_values=pixel_values, output_hidden_states=True).hidden_states[self.config["generation_feature_layer"]]
            tokens = h[:, 1:, :]  # class token dropped
            B, N, D = tokens.shape
            G = int(round(N ** 0.5))
            grid = tokens.transpose(1, 2).reshape(B, D, G, G)
            k = self.config["generation_pool_kernel"]
            return F.avg_pool2d(grid, k, stride=k).reshape(B, D, -1).transpose(1, 2)  # (B, n, D)

    def embed(self, input_ids, understanding_mask, generation_mask, und_pixels, gen_pixels):
        """Token embeddings with understanding vectors and teacher-forced generation vectors spliced in."""
        e = self.language_model.get_input_embeddings()(input_ids)
        targets = None
        if und_pixels is not None and und_pixels.shape[0]:
            u = self.understanding_projector(self.understanding_features(und_pixels))
            e = e.masked_scatter(understanding_mask.unsqueeze(-1), u.reshape(-1, u.shape[-1]).to(e.dtype))
        if gen_pixels is not None and gen_pixels.shape[0]:
            targets = self.generation_targets(gen_pixels)
            g = self.generation_projector(targets)
            e = e.masked_scatter(generation_mask.unsqueeze(-1), g.reshape(-1, g.shape[-1]).to(e.dtype))
        return e, targets

    def forward(self, batch):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        und, gen = batch["understanding_mask"].bool(), batch["generation_mask"].bool()
        e, targets = self.embed(ids, und, gen, batch.get("understanding_pixel_values"), batch.get("generation_pixel_values"))
        pos = positions(mask)
        out = self.language_model.model(inputs_embeds=e, attention_mask=mask, position_ids=pos)
        h = out.last_hidden_state  # (B, T, C), after the final norm
        logits = self.language_model.lm_head(h)
        labels = batch["labels"]
        shifted = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], -100)], 1)
        if (shifted != -100).any():
            text_loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), shifted.reshape(-1), ignore_index=-100)
        else:
            text_loss = logits.sum() * 0
        if targets is not None:
            predicting = torch.cat([gen[:, 1:], torch.zeros_like(gen[:, :1])], 1)  # position t predicts the vector at t + 1
            pred = self.generation_head(h[predicting])  # (M, D)
            tgt = targets.reshape(-1, targets.shape[-1])
            image_loss = F.mse_loss(pred.float(), tgt.float())
            cosine = 1 - F.cosine_similarity(pred.float(), tgt.float(), dim=-1).mean()
        else:
            image_loss = cosine = h.sum() * 0
        wt, wi = self.config.get("text_loss_weight", 1.0), self.config.get("image_loss_weight", 1.0)  # the README's defaults
        return dict(loss=wt * text_loss + wi * image_loss, text_loss=text_loss, image_loss=image_loss, cosine=cosine, logits=logits)

    @torch.no_grad()
    def generate_vectors(self, tok, captions):
        """Left-padded batch [captions..., ""]; returns (len(captions) + 1, n, D) in gen-CLIP space."""
        rows = [generation_prompt_ids(tok, c) for c in captions + [""]]
        ids, mask = left_pad(rows, self.config["image_start_token_id"])
        n = self.num_generation_vectors
        e = self.language_model.get_input_embeddings()(ids)
        pos = positions(mask)
        out = self.language_model.model(inputs_embeds=e, attention_mask=mask, position_ids=pos, use_cache=True)
        v = self.generation_head(out.last_hidden_state[:, -1])
        vectors = [v]
        for _ in range(n - 1):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            pos = pos[:, -1:] + 1
            x = self.generation_projector(v).unsqueeze(1)
            out = self.language_model.model(inputs_embeds=x, attention_mask=mask, position_ids=pos, past_key_values=out.past_key_values, use_cache=True)
            v = self.generation_head(out.last_hidden_state[:, -1])
            vectors.append(v)
        return torch.stack(vectors, 1), ids, mask

    @torch.no_grad()
    def greedy_caption(self, tok, pixel_values, max_new_tokens):
        ids = captioning_prompt_ids(tok, self.num_understanding_tokens)
        generated = []
        for _ in range(max_new_tokens):
            x = torch.tensor([ids + generated])
            und = torch.zeros_like(x, dtype=torch.bool)
            start = ids.index(self.config["image_start_token_id"]) + 1
            und[0, start:start + self.num_understanding_tokens] = True
            e, _ = self.embed(x, und, None, pixel_values, None)
            logits = self.language_model(inputs_embeds=e).logits
            generated.append(int(logits[0, -1].argmax()))
        return generated

    @property
    def num_understanding_tokens(self):
        return (self.siglip.config.image_size // self.siglip.config.patch_size) ** 2

    @property
    def num_generation_vectors(self):
        return (self.gen_clip.config.image_size // self.gen_clip.config.patch_size // self.config["generation_pool_kernel"]) ** 2


def positions(mask):
    """Positions counting real tokens only (as @pisces/llama derives them from the attention mask)."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


def left_pad(rows, fill):
    L = max(len(r) for r in rows)
    ids = torch.tensor([[fill] * (L - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (L - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def encode(tok, text, special):
    return tok(text, add_special_tokens=special).input_ids


def captioning_prompt_ids(tok, n):
    """[BOS] [IMG] <n placeholders> [/IMG] Please provide ... image."""
    ids = encode(tok, IMG + END_IMG + CAPTIONING_PROMPT, True)
    i = ids.index(tok.convert_tokens_to_ids(IMG))
    return ids[:i + 1] + [tok.convert_tokens_to_ids(IMG)] * n + ids[i + 1:]


def generation_prompt_ids(tok, caption):
    """[BOS] Please generate ... caption: <caption> [IMG]"""
    return encode(tok, GENERATION_PROMPT.format(caption=caption) + IMG, True)


def build_batch(tok, model, records, und_pixels, gen_pixels):
    """Right-padded mixed batch in @pisces/model's layout (PiscesProcessor builds the same)."""
    img, end = tok.convert_tokens_to_ids(IMG), tok.convert_tokens_to_ids(END_IMG)
    n_und, n_gen = model.num_understanding_tokens, model.num_generation_vectors
    rows = []
    for r in records:
        if r["task"] == "captioning":
            prompt = captioning_prompt_ids(tok, n_und)
            caption = encode(tok, " " + r["caption"], False) + [tok.eos_token_id]
            ids = prompt + caption
            labels = [-100] * len(prompt) + caption
            start = prompt.index(img) + 1
            und = [0] * len(ids)
            und[start:start + n_und] = [1] * n_und
            gen = [0] * len(ids)
        else:
            prompt = generation_prompt_ids(tok, r["caption"])
            ids = prompt + [img] * n_gen + [end]
            labels = [-100] * (len(ids) - 1) + [end]
            und = [0] * len(ids)
            gen = [0] * len(prompt) + [1] * n_gen + [0]
        rows.append((ids, labels, und, gen))
    L = max(len(r[0]) for r in rows)

    def pad(x, v):
        return x + [v] * (L - len(x))

    return {
        "input_ids": torch.tensor([pad(r[0], img) for r in rows]),
        "labels": torch.tensor([pad(r[1], -100) for r in rows]),
        "attention_mask": torch.tensor([pad([1] * len(r[0]), 0) for r in rows]),
        "understanding_mask": torch.tensor([pad(r[2], 0) for r in rows]),
        "generation_mask": torch.tensor([pad(r[3], 0) for r in rows]),
        "understanding_pixel_values": und_pixels,
        "generation_pixel_values": gen_pixels,
    }


def randomize(model, seed, scale):
    torch.manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, scale)


def make_tokenizer(out):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", IMG, END_IMG]
    corpus = [GENERATION_PROMPT.format(caption="a red circle to the left of a blue square"), CAPTIONING_PROMPT,
              "two green triangles and a yellow circle", "a purple square above an orange triangle", "What colour is the circle?"] * 20
    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    fast.chat_template = (
        "{{- bos_token }}{%- for message in messages %}"
        "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
    fast.save_pretrained(out)
    return fast


def make(name, spec, out):
    d = os.path.join(out, name)
    folder = os.path.join(d, "model")
    os.makedirs(folder, exist_ok=True)
    tok = make_tokenizer(folder)
    S = spec["image_size"]
    siglip = SiglipVisionModel(SiglipVisionConfig(hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_attention_heads=2, image_size=S,
                                                  patch_size=spec["siglip_patch"], layer_norm_eps=1e-6)).eval()
    randomize(siglip, spec["seed"] + 10, 0.2)
    gen_clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=spec["clip_width"], intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
                                                image_size=S, patch_size=spec["clip_patch"], hidden_act="gelu", projection_dim=16)).eval()
    randomize(gen_clip, spec["seed"] + 20, 0.2)
    config = {
        "model_type": "pisces",
        "architectures": ["PiscesForConditionalGeneration"],
        "text_config": dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=spec["tie"],
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, hidden_act="silu"),
        "understanding_feature_layer": spec["und_layer"],
        "generation_feature_layer": spec["gen_layer"],
        "generation_pool_kernel": spec["k"],
        "image_start_token_id": tok.convert_tokens_to_ids(IMG),
        "image_end_token_id": tok.convert_tokens_to_ids(END_IMG),
        "projector_hidden_act": "gelu",
        "text_loss_weight": 1.0,
        "image_loss_weight": 2.0,
        "generation_prompt": GENERATION_PROMPT,
        "captioning_prompt": CAPTIONING_PROMPT,
    }
    torch.manual_seed(spec["seed"])
    model = Pisces(config, siglip, gen_clip).eval()
    randomize(model, spec["seed"] + 30, 0.15)
    if spec["tie"]:
        model.language_model.tie_weights()
    save_pisces(model, siglip, gen_clip, folder, spec, S)

    # images: smooth random pictures at the encoders' size (no resize, so pixels are exact)
    rng = np.random.default_rng(spec["seed"])
    images = []
    for i in range(4):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        path = os.path.join(d, f"image{i}.png")
        Image.fromarray(small).resize((S, S), Image.BILINEAR).save(path)
        images.append(path)
    sp = SiglipImageProcessorPil.from_pretrained(os.path.join(folder, "siglip"))
    cp = CLIPImageProcessorPil.from_pretrained(os.path.join(folder, "gen_clip"))
    pil = [Image.open(p).convert("RGB") for p in images]
    und_px = sp(images=[pil[0], pil[2]], return_tensors="pt").pixel_values
    gen_px = cp(images=[pil[1], pil[3]], return_tensors="pt").pixel_values
    records = [
        {"task": "captioning", "image": "image0.png", "caption": "a red circle"},
        {"task": "generation", "image": "image1.png", "caption": "a blue square to the left of a green triangle"},
        {"task": "captioning", "image": "image2.png", "caption": "two green triangles and a yellow circle above a purple square"},
        {"task": "generation", "image": "image3.png", "caption": "a yellow circle"},
    ]
    batch = build_batch(tok, model, records, und_px, gen_px)
    model.train(False)
    for p in model.parameters():
        p.grad = None
    r = model(batch)
    r["loss"].backward()
    grads = {}
    for n, p in model.named_parameters():
        if "projector" in n or "generation_head" in n or ".layers.0." in n:
            grads["grad." + n] = p.grad
    tensors = {k: v for k, v in batch.items()}
    tensors.update(loss=r["loss"], text_loss=r["text_loss"], image_loss=r["image_loss"], cosine=r["cosine"], logits=r["logits"])
    tensors.update(grads)

    captions = ["a red circle", "a blue square to the left of a green triangle"]
    vectors, gen_ids, gen_mask = model.generate_vectors(tok, captions)
    tensors.update(vectors_cond=vectors[:-1], vectors_uncond=vectors[-1], vector_prompt_ids=gen_ids, vector_prompt_mask=gen_mask)
    caption_tokens = model.greedy_caption(tok, und_px[:1], 8)

    # 4-step guided decode: the caption vectors against the empty caption's, from fixed noise
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "decoder", "unet")).eval()
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "decoder", "vae")).eval()
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(folder, "decoder", "scheduler"))
    cond = vectors[:-1]
    uncond = vectors[-1:].expand_as(cond)
    g = torch.Generator().manual_seed(spec["seed"] + 40)
    height = width = 32  # VAE x4, UNet x2
    latents = torch.randn(2, 4, height // 4, width // 4, generator=g)
    tensors["init_latents"] = latents.clone()
    guidance = 3.0
    with torch.no_grad():
        latents = guided_decode(unet, scheduler, cond, uncond, 4, latents, height, width, guidance)
        image = (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    tensors.update(final_latents=latents, image=image)

    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, os.path.join(d, "reference.safetensors"))
    json.dump({"records": records, "understanding_images": ["image0.png", "image2.png"], "generation_images": ["image1.png", "image3.png"],
               "vector_captions": captions, "caption_tokens": caption_tokens, "guidance": guidance, "steps": 4, "height": height, "width": width},
              open(os.path.join(d, "reference.json"), "w"), indent=1)


def guided_decode(unet, scheduler, cond, uncond, steps, latents, height, width, guidance):
    """The decoder loop: classifier-free guidance between the caption's vectors and the empty caption's,
    Emu2-style conditioning (vectors as context, their mean in the pooled slot, SDXL time ids)."""
    scheduler.set_timesteps(steps)
    latents = latents * scheduler.init_noise_sigma
    ids = torch.tensor([[height, width, 0, 0, height, width]] * (2 * cond.shape[0]), dtype=torch.float32)
    context = torch.cat([uncond, cond])
    pooled = torch.cat([uncond.mean(1), cond.mean(1)])
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        eps = unet(x, t, encoder_hidden_states=context, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample
        eu, ec = eps.chunk(2)
        latents = scheduler.step(eu + guidance * (ec - eu), t, latents).prev_sample
    return latents


def save_pisces(model, siglip, gen_clip, folder, spec, S):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config["text_config"]["tie_word_embeddings"]:
        state.pop("language_model.lm_head.weight")
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    json.dump(model.config, open(os.path.join(folder, "config.json"), "w"), indent=1)
    siglip.save_pretrained(os.path.join(folder, "siglip"))
    SiglipImageProcessorPil(size={"height": S, "width": S}).save_pretrained(os.path.join(folder, "siglip"))
    gen_clip.save_pretrained(os.path.join(folder, "gen_clip"))
    CLIPImageProcessorPil(size={"shortest_edge": S}, crop_size={"height": S, "width": S}).save_pretrained(os.path.join(folder, "gen_clip"))
    D = gen_clip.config.hidden_size
    torch.manual_seed(spec["seed"] + 50)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(32, 64), layers_per_block=1,
        attention_head_dim=(2, 4), transformer_layers_per_block=(1, 1), cross_attention_dim=D, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=D + 6 * 8,
        norm_num_groups=8, flip_sin_to_cos=True, freq_shift=0).eval()
    randomize(unet, spec["seed"] + 51, 0.1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                        block_out_channels=[8, 16, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4, scaling_factor=0.13025).eval()
    randomize(vae, spec["seed"] + 52, 0.2)
    dec = os.path.join(folder, "decoder")
    unet.save_pretrained(os.path.join(dec, "unet"))
    vae.save_pretrained(os.path.join(dec, "vae"))
    EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                           timestep_spacing="leading", steps_offset=1).save_pretrained(os.path.join(dec, "scheduler"))
    json.dump({"_class_name": "PiscesDecoderPipeline", "_diffusers_version": "0.42.1", "scheduler": ["diffusers", "EulerDiscreteScheduler"],
               "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}, open(os.path.join(dec, "model_index.json"), "w"), indent=1)


def load_pisces(folder):
    """Loads a Pisces folder in the layout of packages/model/README.md (strict)."""
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["model_type"] == "pisces", config["model_type"]
    siglip = SiglipVisionModel.from_pretrained(os.path.join(folder, "siglip")).eval()
    gen_clip = CLIPVisionModel.from_pretrained(os.path.join(folder, "gen_clip")).eval()
    model = Pisces(config, siglip, gen_clip).eval()
    state = load_file(os.path.join(folder, "model.safetensors"))
    if config["text_config"].get("tie_word_embeddings") and "language_model.lm_head.weight" not in state:
        state["language_model.lm_head.weight"] = state["language_model.model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True)
    if config["text_config"].get("tie_word_embeddings"):
        model.language_model.tie_weights()
    return model


def check(folder, ref_dir):
    model = load_pisces(folder)
    ref = load_file(os.path.join(ref_dir, "reference.safetensors"))
    keys = ["input_ids", "labels", "attention_mask", "understanding_mask", "generation_mask", "understanding_pixel_values", "generation_pixel_values"]
    with torch.no_grad():
        r = model({k: ref[k] for k in keys})
    worst = max(abs(float(r[k]) - float(ref[k])) for k in ("loss", "text_loss", "image_loss"))
    print(json.dumps({"loss": float(r["loss"]), "reference_loss": float(ref["loss"]), "max_abs_diff": worst}))
    sys.exit(0 if worst < 1e-5 else 1)


def adamw(params, lr, weight_decay, **kw):
    """@pisces/trainer's AdamW: weight decay on parameters of 2 or more dimensions only (biases, norm
    gains and scalars such as SigLIP's logit scale and bias are not decayed), as transformers' Trainer."""
    params = list(params)
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, **kw)


def train_steps(ref_dir, out_path, steps=2, lr=1e-3, weight_decay=0.01, max_grad_norm=1.0):
    """The reference loop of @pisces/trainer: AdamW (torch.optim), gradient clipping, the stored batch each step."""
    model = load_pisces(os.path.join(ref_dir, "model"))
    ref = load_file(os.path.join(ref_dir, "reference.safetensors"))
    keys = ["input_ids", "labels", "attention_mask", "understanding_mask", "generation_mask", "understanding_pixel_values", "generation_pixel_values"]
    batch = {k: ref[k] for k in keys}
    params = [p for p in model.parameters()]
    opt = adamw(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999), eps=1e-8)
    losses = []
    model.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        r = model(batch)
        r["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(float(r["loss"]))
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    state.pop("language_model.lm_head.weight", None)
    save_file(state, out_path)
    json.dump({"losses": losses}, open(out_path + ".json", "w"))


def decoder_step(ref_dir, out_path, lr=1e-4, weight_decay=0.01, max_grad_norm=1.0):
    """The reference of @pisces/trainer's decoder step: the UNet learns to denoise VAE latents conditioned
    Emu2-style on gen-CLIP vectors (a dropped row gets zeros), DDPM noise at uniform timesteps, MSE
    against the scheduler's target (epsilon); AdamW and clipping. Inputs are dumped with the outputs."""
    folder = os.path.join(ref_dir, "model")
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "decoder", "unet"))
    scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(folder, "decoder", "scheduler"))
    g = torch.Generator().manual_seed(123)
    B, H, W = 2, 32, 32
    latents = torch.randn(B, 4, H // 4, W // 4, generator=g)
    vectors = torch.randn(B, 16, unet.config.cross_attention_dim, generator=g)
    noise = torch.randn(B, 4, H // 4, W // 4, generator=g)
    timesteps = torch.tensor([17, 733])
    keep = torch.tensor([1.0, 0.0])  # row 1 dropped: zeros (conditioning dropout for classifier-free guidance)
    cond = vectors * keep[:, None, None]
    alphas = scheduler.alphas_cumprod[timesteps].float()
    noisy = alphas.sqrt()[:, None, None, None] * latents + (1 - alphas).sqrt()[:, None, None, None] * noise
    ids = torch.tensor([[H, W, 0, 0, H, W]] * B, dtype=torch.float32)
    params = list(unet.parameters())
    opt = adamw(params, lr=lr, weight_decay=weight_decay)
    unet.train()
    pred = unet(noisy, timesteps, encoder_hidden_states=cond, added_cond_kwargs={"text_embeds": cond.mean(1), "time_ids": ids}).sample
    loss = F.mse_loss(pred.float(), noise.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    tensors = {"latents": latents, "vectors": vectors, "noise": noise, "timesteps": timesteps, "keep": keep, "loss": loss.detach()}
    tensors.update({"unet." + k: v for k, v in unet.state_dict().items()})
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, out_path)


def vae_step(ref_dir, out_path, lr=1e-4, weight_decay=0.01, max_grad_norm=1.0, kl_weight=1e-3):
    """The reference of @pisces/trainer's VAE step: reconstruction MSE of a posterior sample (noise given)
    plus kl_weight x the KL to N(0, I) (summed over latent elements, averaged over the batch); AdamW."""
    vae = AutoencoderKL.from_pretrained(os.path.join(ref_dir, "model", "decoder", "vae"))
    g = torch.Generator().manual_seed(321)
    pixels = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    eps = torch.randn(2, 4, 8, 8, generator=g)
    params = list(vae.parameters())
    opt = adamw(params, lr=lr, weight_decay=weight_decay)
    vae.train()
    posterior = vae.encode(pixels).latent_dist
    z = posterior.mean + posterior.std * eps
    recon = vae.decode(z).sample
    rec = F.mse_loss(recon.float(), pixels.float())
    kl = posterior.kl().mean()
    loss = rec + kl_weight * kl
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    tensors = {"pixels": pixels, "eps": eps, "loss": loss.detach(), "reconstruction": rec.detach(), "kl": kl.detach()}
    tensors.update({"vae." + k: v for k, v in vae.state_dict().items()})
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, out_path)


def siglip_step(siglip_dir, images_dir, out_path, lr=1e-4, weight_decay=0.01, max_grad_norm=1.0):
    """The reference of @pisces/trainer's SigLIP step: transformers' SiglipModel sigmoid loss
    (return_loss=True) on image-caption pairs, texts padded to max_length; AdamW and clipping."""
    from transformers import SiglipModel, SiglipProcessor
    model = SiglipModel.from_pretrained(siglip_dir)
    processor = SiglipProcessor.from_pretrained(siglip_dir)
    captions = ["a red circle", "a blue square to the left of a green triangle", "two green triangles", "a yellow circle"]
    images = [Image.open(os.path.join(images_dir, f"image{i}.png")).convert("RGB") for i in range(4)]
    inputs = processor(text=captions, images=images, padding="max_length", max_length=model.config.text_config.max_position_embeddings,
                       truncation=True, return_tensors="pt")
    params = list(model.parameters())
    opt = adamw(params, lr=lr, weight_decay=weight_decay)
    model.train()
    out = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], return_loss=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    tensors = {"loss": out.loss.detach(), "input_ids": inputs["input_ids"], "pixel_values": inputs["pixel_values"]}
    tensors.update({"siglip." + k: v for k, v in model.state_dict().items()})
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, out_path)
    json.dump({"captions": captions}, open(out_path + ".json", "w"))


def simmim_start(D, p, g):
    """SimMIM's mask token and pixel head for a width-D ViT with patch p, drawn from generator g:
    (mask_token, head, their start values by the trainer's key names)."""
    mask_token = torch.nn.Parameter(torch.randn(D, generator=g) * 0.02)
    head = torch.nn.Linear(D, p * p * 3)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.05)
        head.bias.zero_()
    start = {"mask_token": mask_token.detach().clone(), "pixel_head.weight": head.weight.detach().clone(), "pixel_head.bias": head.bias.detach().clone()}
    return mask_token, head, start


def simmim_loss(vm, pixels, mask, mask_token, head):
    """Masked patches' embeddings become the mask token (plus their position embedding), the ViT runs
    on all tokens, the head predicts each masked patch's pixels (patch-major RGB); MSE over them."""
    c = vm.config
    G, p, B = c.image_size // c.patch_size, c.patch_size, pixels.shape[0]
    e = vm.embeddings(pixels)  # (B, 1 + N, D), position embeddings added
    pos = vm.embeddings.position_embedding.weight[1:]  # (N, D)
    patches = torch.where(mask[..., None], (mask_token + pos)[None].expand_as(e[:, 1:]), e[:, 1:])
    h = vm.encoder(inputs_embeds=vm.pre_layrnorm(torch.cat([e[:, :1], patches], 1))).last_hidden_state
    pred = head(h[:, 1:])  # (B, N, p*p*3)
    target = pixels.reshape(B, 3, G, p, G, p).permute(0, 2, 4, 3, 5, 1).reshape(B, G * G, p * p * 3)
    return ((pred - target) ** 2).mean(-1)[mask].mean()


def gen_clip_step(ref_dir, out_path, lr=1e-4, weight_decay=0.01, max_grad_norm=1.0):
    """The reference of @pisces/trainer's gen-CLIP step, masked image modelling as SimMIM does it:
    masked patches' embeddings become a learned mask token (plus their position embedding), the
    ViT runs on all tokens, a linear head predicts each masked patch's pixels (normalized, patch-major
    RGB), MSE over masked patches; AdamW and clipping. The mask and the head's start are dumped."""
    clip = CLIPVisionModel.from_pretrained(os.path.join(ref_dir, "model", "gen_clip"))
    c = clip.config
    G, p, D = c.image_size // c.patch_size, c.patch_size, c.hidden_size
    g = torch.Generator().manual_seed(99)
    pixels = torch.randn(2, 3, c.image_size, c.image_size, generator=g)
    mask = torch.rand(2, G * G, generator=g) < 0.75
    mask_token, head, start = simmim_start(D, p, g)
    params = list(clip.parameters()) + [mask_token] + list(head.parameters())
    opt = adamw(params, lr=lr, weight_decay=weight_decay)
    clip.train()
    vm = getattr(clip, "vision_model", clip)  # transformers 5 keeps the tower at the top
    loss = simmim_loss(vm, pixels, mask, mask_token, head)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    opt.step()
    tensors = {"pixels": pixels, "mask": mask, "loss": loss.detach(), **{"start." + k: v for k, v in start.items()}}
    tensors.update({"clip." + k: v for k, v in clip.state_dict().items()})
    tensors.update({"mask_token": mask_token.detach(), "pixel_head.weight": head.weight.detach(), "pixel_head.bias": head.bias.detach()})
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, out_path)


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "gen_clip_step":
        gen_clip_step(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "siglip_step":
        siglip_step(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "vae_step":
        vae_step(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "decoder_step":
        decoder_step(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "train_steps":
        train_steps(sys.argv[2], sys.argv[3])
    else:
        out = sys.argv[1]
        for name, spec in CONFIGS.items():
            make(name, spec, out)
        open(os.path.join(out, "complete"), "w").close()
        print(f"wrote Pisces reference to {out}")
