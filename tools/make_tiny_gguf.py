#!/usr/bin/env python3
"""Writes tiny random GGUF models (qwen2 and llama architectures) for parley's LLM tests.

Each file is a complete chat model in miniature: 2 decoder layers, hidden size 64, 4 query heads
sharing 2 kv heads (grouped-query attention), f16 weights (exact in f32, so our forward and
candle-transformers' reference models can be compared tightly; one more qwen2 file has Q8_0
matrices for the quantized kernels), a byte-level BPE vocabulary
(GPT-2 byte alphabet + merges learned from a small text + ChatML control tokens) and a ChatML
chat template. qwen2 adds q/k/v biases and uses neox rope; llama uses interleaved rope.

    .venv/bin/python tools/make_tiny_gguf.py            # writes assets/goldens/llm/tiny_*.gguf

Deterministic (fixed seed): rerunning rewrites the same bytes.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np
import gguf

HIDDEN = 64
HEADS = 4
KV_HEADS = 2
FFN = 128
LAYERS = 2
CONTEXT = 256
MERGES = 48

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Text the merges are learned from.
CORPUS = (
    "the quick brown fox jumps over the lazy dog. hello there, how are you? "
    "what is the capital of france? the capital of france is paris. "
    "tell me about the moon. the moon is far away from the earth. "
) * 4


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in character for each byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def learn_merges(alphabet: list[str]) -> list[tuple[str, str]]:
    """Plain BPE over the corpus split at spaces (space kept at the word start, as GPT-2)."""
    words = collections.Counter()
    for i, word in enumerate(CORPUS.split(" ")):
        text = (" " if i else "") + word
        words[tuple(alphabet[b] for b in text.encode())] += 1
    merges = []
    for _ in range(MERGES):
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        merged = collections.Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def write(path: Path, arch: str, seed: int, quant: str = "f16") -> None:
    rng = np.random.default_rng(seed)
    alphabet = byte_alphabet()
    merges = learn_merges(alphabet)
    tokens = alphabet + [a + b for a, b in merges] + SPECIALS
    types = [gguf.TokenType.NORMAL] * (len(tokens) - len(SPECIALS)) + [gguf.TokenType.CONTROL] * len(
        SPECIALS
    )
    vocab = len(tokens)
    head_dim = HIDDEN // HEADS

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"parley tiny random {arch}")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0 if arch == "llama" else 1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch == "qwen2" else "llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_chat_template(CHATML)

    def matrix(rows: int, cols: int) -> np.ndarray:
        # Scaled so activations stay O(1) through the layers.
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float16)

    def add_matrix(name: str, values: np.ndarray) -> None:
        if quant == "q8_0":
            qtype = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(name, gguf.quants.quantize(values.astype(np.float32), qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, values)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)

    kv = KV_HEADS * head_dim
    # Small embeddings: with the output layer tied to them (qwen2 here), large ones make every
    # position predict its own input token again, and the greedy answer one repeated token.
    add_matrix("token_embd.weight", matrix(vocab, HIDDEN) * np.float16(np.sqrt(HIDDEN) / 10))
    w.add_tensor("output_norm.weight", norm())
    # qwen2 ties the output layer to the embeddings here (no output.weight), llama has its own.
    if arch == "llama":
        add_matrix("output.weight", matrix(vocab, HIDDEN))
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm())
        add_matrix(p + "attn_q.weight", matrix(HIDDEN, HIDDEN))
        add_matrix(p + "attn_k.weight", matrix(kv, HIDDEN))
        add_matrix(p + "attn_v.weight", matrix(kv, HIDDEN))
        if arch == "qwen2":
            for name, n in (("attn_q.bias", HIDDEN), ("attn_k.bias", kv), ("attn_v.bias", kv)):
                w.add_tensor(p + name, (0.1 * rng.standard_normal(n)).astype(np.float32))
        add_matrix(p + "attn_output.weight", matrix(HIDDEN, HIDDEN))
        w.add_tensor(p + "ffn_norm.weight", norm())
        add_matrix(p + "ffn_gate.weight", matrix(FFN, HIDDEN))
        add_matrix(p + "ffn_up.weight", matrix(FFN, HIDDEN))
        add_matrix(p + "ffn_down.weight", matrix(HIDDEN, FFN))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {arch}, vocab {vocab}, {path.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "assets/goldens/llm",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "tiny_qwen2.gguf", "qwen2", seed=1)
    write(args.out / "tiny_llama.gguf", "llama", seed=2)
    # The same qwen2 with Q8_0 matrices: the quantized kernels (and input padding) on qwen2.
    write(args.out / "tiny_qwen2_q8_0.gguf", "qwen2", seed=1, quant="q8_0")


if __name__ == "__main__":
    main()
