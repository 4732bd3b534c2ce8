#!/usr/bin/env python3
"""Writes a tiny random llama GGUF with a SentencePiece (`tokenizer.ggml.model == "llama"`)
vocabulary, and what SentencePiece itself makes of some test strings, for parley's tests.

The vocabulary is a SentencePiece BPE model (byte fallback on) trained here on a small text; the
GGUF carries its pieces, scores and token types the way llama.cpp's converter writes them
(normal / unknown / control / byte). The weights are random (2 layers, f16), with a Llama 2 chat
template. The golden JSON holds `sp.encode(text)` for each test string: the ids a llama.cpp-style
tokenizer must produce for the text with its dummy prefix (`▁`) added, as SentencePiece does
(llama.cpp adds it at the start of a prompt and after every special token), and
`sp.decode(ids)`, which drops that prefix's space again (also after a leading BOS).

    .venv/bin/python tools/make_tiny_spm_gguf.py   # writes assets/goldens/llm/tiny_spm_llama.gguf
                                                   # and assets/goldens/llm/tiny_spm_tokens.json
Deterministic: rerunning rewrites the same bytes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm

HIDDEN, HEADS, KV_HEADS, FFN, LAYERS, CONTEXT = 64, 4, 2, 96, 2, 256
# Enough merges (about 200 above the bytes and characters) to exercise the score order.
VOCAB = 448
# Llama 2 chat's template (system prompt inside the first [INST], BOS before every [INST], each
# answer closed by EOS) without its `.strip()` calls and role check.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog.",
    "hello there, how are you today?",
    "what is the capital of france? the capital of france is paris.",
    "tell me about the moon. the moon is far away from the earth.",
    "a spider has eight legs, and an insect has six legs.",
    "numbers like 12, 345 and 2026 are written with digits.",
    "the weather today is sunny with a light wind from the west.",
    "please set a timer for ten minutes and remind me to call my mother.",
    "i would like to listen to some music while i am cooking dinner.",
    "could you tell me a short story about a brave little mouse?",
    "the train to the city leaves at seven in the morning every day.",
    "water boils at one hundred degrees at sea level.",
    "my favourite colours are green, blue and a warm orange.",
    "we are going to the mountains for the weekend with our friends.",
    "thank you very much, that was really helpful and kind.",
    "how many minutes are there in an hour? there are sixty minutes.",
    "she reads a book every evening before she goes to sleep.",
    "turn off the lights in the kitchen and lock the front door.",
] * 20
TESTS = [
    "hello",
    "Hello world",
    "the capital of france is paris.",
    "  two leading spaces",
    "trailing space ",
    "multiple   spaces   inside",
    "new\nline",
    "tabs\tand\ttabs",
    "numbers 12345 and 3.14",
    "punctuation!?;:,.",
    "café crème brûlée",
    "naïve résumé",
    "emoji 🙂 here",
    "日本語のテキスト",
    "mixed: spider 🕷 legs=8",
    "ALL CAPS TEXT",
    "a",
    " ",
    "UPPER lower MiXeD",
    "over the lazy dog",
    "Line one.\nLine two.\n\nLine four",
    # Runs of one letter: equal-score pairs overlap, the leftmost must merge first.
    "a looooong weeeek, sooo gooood, llll ssssss",
    # Long enough for many overlapping candidate merges.
    " ".join(CORPUS[:18]),
]


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "assets/goldens/llm"
    out.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB,
        byte_fallback=True,
        character_coverage=1.0,
        num_threads=1,
        seed_sentencepiece_size=1000,
        shuffle_input_sentence=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        # As Llama 2's tokenizer: whitespace is kept as is (llama.cpp never collapses it).
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    vocab = len(tokens)

    path = out / "tiny_spm_llama.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("parley tiny random llama (SentencePiece vocabulary)")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_chat_template(LLAMA2_TEMPLATE)
    rng = np.random.default_rng(3)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float16)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)

    kv = KV_HEADS * HIDDEN // HEADS
    w.add_tensor("token_embd.weight", matrix(vocab, HIDDEN) * np.float16(np.sqrt(HIDDEN) / 10))
    w.add_tensor("output_norm.weight", norm())
    w.add_tensor("output.weight", matrix(vocab, HIDDEN))
    for i in range(LAYERS):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm())
        w.add_tensor(p + "attn_q.weight", matrix(HIDDEN, HIDDEN))
        w.add_tensor(p + "attn_k.weight", matrix(kv, HIDDEN))
        w.add_tensor(p + "attn_v.weight", matrix(kv, HIDDEN))
        w.add_tensor(p + "attn_output.weight", matrix(HIDDEN, HIDDEN))
        w.add_tensor(p + "ffn_norm.weight", norm())
        w.add_tensor(p + "ffn_gate.weight", matrix(FFN, HIDDEN))
        w.add_tensor(p + "ffn_up.weight", matrix(FFN, HIDDEN))
        w.add_tensor(p + "ffn_down.weight", matrix(HIDDEN, FFN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    golden = []
    for text in TESTS:
        ids = sp.encode(text)
        decoded = sp.decode(ids)
        # SentencePiece drops the dummy prefix's space after a leading BOS as well.
        assert sp.decode([sp.bos_id()] + ids) == decoded, text
        golden.append({"text": text, "ids": ids, "decoded": decoded})
    # A first chat turn as LLAMA2_TEMPLATE renders it, and its ids as llama.cpp tokenizes a
    # prompt: BOS (printed by the template), then the text after it with the dummy prefix.
    system, user = "Be brief.", "what is the capital of france?"
    after_bos = f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"
    prompt = {"system": system, "user": user, "text": "<s>" + after_bos,
              "ids": [sp.bos_id()] + sp.encode(after_bos)}
    (out / "tiny_spm_tokens.json").write_text(
        json.dumps({"generator": "tools/make_tiny_spm_gguf.py", "sentencepiece": spm.__version__,
                    "cases": golden, "prompt": prompt}, ensure_ascii=False, indent=1) + "\n"
    )
    print(f"{path}: vocab {vocab}, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
