"""A SmolLM2-135M-shaped LlamaForCausalLM with random weights (seed 0), saved once to a folder that
both sides of the llama benchmarks load (llama_bench.py, llama_train_memory.py)."""

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def ensure_random_smollm2(model_dir):
    if os.path.exists(os.path.join(model_dir, "config.json")):
        return
    torch.manual_seed(0)
    # HuggingFaceTB/SmolLM2-135M-Instruct config.json
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(model_dir)
