"""Tiny random Qwen2.5-Omni Thinker checkpoints and transformers goldens for the candle port.

What it does
  Builds two tiny Qwen2.5-Omni Thinker checkpoints with random weights (a few layers, small widths,
  grouped-query attention) with transformers' own `Qwen2_5OmniThinkerForConditionalGeneration`,
  writes them in the layout of the published Hugging Face checkpoints (a top-level Qwen2.5-Omni
  `config.json` with `thinker_config.{audio_config,text_config}`, weights named `thinker.*` in
  `model.safetensors`), reloads every checkpoint through `from_pretrained` (so transformers' own
  checkpoint conversion proves the names) and writes inputs and transformers outputs as safetensors
  goldens in the tensor layout of `parley reference-check`:

  assets/goldens/qwen/
    features_{70,200,530}.safetensors   `input_features` f32 [128, T]: 0.7 s, exactly one 2 s block,
                                        5.3 s (partial last block); random log-mel-like values
    <config>/checkpoint/config.json, model.safetensors   (the checkpoint directory)
    <config>/audio_encoder_<T>.safetensors        `audio_embeds` f32 [N, output_dim]
    <config>/thinker_text_inputs.safetensors      `input_ids` i64 [1, L] (no audio)
    <config>/thinker_text.safetensors             `logits` [1, L, vocab], `hidden_states` [1, L, hidden]
    <config>/thinker_audio_inputs.safetensors     `input_ids` with <|audio_bos|> <|AUDIO|>xN <|audio_eos|>,
                                                  `input_features` [128, T]
    <config>/thinker_audio.safetensors            `logits`, `hidden_states` (final norm), and
                                                  `position_ids` i64 [3, 1, L] from `get_rope_index`
    <config>/thinker_audio_<T>_ids.safetensors    (tiny_a, tiny_b: the other two clip lengths) the
                                                  `input_ids` of a prompt with features_<T>'s audio
    <config>/thinker_audio_<T>.safetensors        its `hidden_states` [1, L, hidden] at every position,
                                                  `logits_tail` [1, 7, vocab] (the positions from
                                                  <|audio_eos|> on; the rest follow from the hidden
                                                  states through lm_head, checked above) and
                                                  `position_ids`; kept small for the size budget

  The two configs (see CONFIGS):
  - tiny_a: published-checkpoint config layout (`rope_theta` + `rope_scaling.mrope_section`), fields
    the published config.json omits left out, f32 weights, untied lm_head, blocks of 2 s (n_window 100).
  - tiny_b: newer `rope_parameters` layout, bf16 weights (like the real checkpoints; the goldens are
    computed from the bf16-rounded weights in f32), 3 query heads per kv head, blocks of 0.5 s
    (n_window 25): an odd number of frames per block after the conv stem.
  Thinker prompts with audio: tiny_a 200 frames (one whole block), tiny_b 70 frames (a whole block
  and a partial one) in full, and the other two of 70, 200 and 530 frames for each in the smaller
  `thinker_audio_<T>` form; the audio encoder goldens cover 70, 200 and 530 frames for both configs.
  Both use a SMALL vocabulary with the special-token ids remapped through config.json.
  - tiny_r: the REAL vocabulary (151936 rows) and the published special-token ids, tied embeddings
    (no lm_head tensor), width 8 in bf16 (the embedding is 2.4 MB, the bulk of these goldens).
    Its logits are 0.6 MB per position, so its thinker goldens keep `logits_at_columns` [1, L, K]
    at `logit_columns` i64 [K] (all special ids and every 397th ordinary id) and `argmax` i64 [1, L]
    over the whole vocabulary instead of `logits`.

How to run (from the repo root; CPU only, ~1 minute, deterministic: a rerun on the same machine
rewrites the same files; another CPU's kernels move the float outputs by ~1e-6, far inside the
tests' 1e-4, so regenerate only what changed)
    .venv/bin/pip install --no-deps -r tools/requirements.txt
    .venv/bin/pip install --no-deps -r tools/reference/requirements-qwen.txt
    .venv/bin/python tools/reference/qwen_omni_goldens.py [--out assets/goldens/qwen]

The Rust side: thinker/tests/qwen_goldens.rs runs `parley_thinker::qwen::reference_check::run` on
these inputs and compares with the outputs.
"""

import argparse
import copy
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

import transformers
from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

assert transformers.__version__ == "5.23.0", transformers.__version__
assert torch.__version__.startswith("2.15.0"), torch.__version__

# The positions from <|audio_eos|> on in prompt_ids' audio prompts (<|audio_eos|> and 6 text ids).
THINKER_AUDIO_TAIL = 7
FRAME_COUNTS = [70, 200, 530]  # 0.7 s, 2 s, 5.3 s of 100 fps log-mel

# Special-token ids of the real tokenizer (added_tokens.json) for reference; the tiny configs remap them.
REAL_IDS = dict(audio=151646, audio_bos=151647, audio_eos=151648, image=151655, video=151656,
                vision_bos=151652, vision_eos=151653)


def tiny_a():
    """Published layout: rope_theta + rope_scaling, defaults omitted, f32 weights."""
    vocab = 384
    return {
        "name": "tiny_a",
        "dtype": torch.float32,
        "thinker_config": {
            "model_type": "qwen2_5_omni_thinker",
            # n_window, num_mel_bins, max_source_positions omitted: the published defaults (100, 128,
            # 1500) apply.
            "audio_config": {
                "model_type": "qwen2_5_omni_audio_encoder",
                "d_model": 32, "encoder_attention_heads": 4, "encoder_ffn_dim": 64,
                "encoder_layers": 2, "output_dim": 64,
            },
            "text_config": {
                "model_type": "qwen2_5_omni_text",
                "vocab_size": vocab, "hidden_size": 64, "intermediate_size": 96,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "rope_theta": 1000000.0,
                "rope_scaling": {"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
                "tie_word_embeddings": False,
            },
            "vision_config": {
                "model_type": "qwen2_5_omni_vision_encoder",
                "depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                "patch_size": 2, "temporal_patch_size": 2, "spatial_merge_size": 2,
                "window_size": 8, "out_hidden_size": 64, "fullatt_block_indexes": [0],
            },
            "audio_token_index": vocab - 10, "audio_start_token_id": vocab - 9,
            "audio_end_token_id": vocab - 8, "image_token_index": vocab - 7,
            "video_token_index": vocab - 6, "vision_start_token_id": vocab - 5,
            "vision_end_token_id": vocab - 4, "user_token_id": 17,
            "tie_word_embeddings": False,
        },
    }


def tiny_b():
    """Newer rope_parameters layout, bf16 weights, GQA 3:1, 0.5 s blocks."""
    vocab = 256
    return {
        "name": "tiny_b",
        "dtype": torch.bfloat16,
        "thinker_config": {
            "model_type": "qwen2_5_omni_thinker",
            "audio_config": {
                "model_type": "qwen2_5_omni_audio_encoder",
                "num_mel_bins": 128, "d_model": 24, "encoder_attention_heads": 2,
                "encoder_ffn_dim": 40, "encoder_layers": 1, "output_dim": 48, "n_window": 25,
                "max_source_positions": 1500,
            },
            "text_config": {
                "model_type": "qwen2_5_omni_text",
                "vocab_size": vocab, "hidden_size": 48, "intermediate_size": 80,
                "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2,
                "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                    "mrope_section": [1, 1, 2]},
                "tie_word_embeddings": False,
            },
            "vision_config": {
                "model_type": "qwen2_5_omni_vision_encoder",
                "depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                "patch_size": 2, "temporal_patch_size": 2, "spatial_merge_size": 2,
                "window_size": 8, "out_hidden_size": 48, "fullatt_block_indexes": [0],
            },
            "audio_token_index": 200, "audio_start_token_id": 201, "audio_end_token_id": 202,
            "image_token_index": 203, "video_token_index": 204, "vision_start_token_id": 205,
            "vision_end_token_id": 206, "user_token_id": 11,
            "position_id_per_seconds": 25, "seconds_per_chunk": 2,
            "tie_word_embeddings": False,
        },
    }


def tiny_r():
    """The real vocabulary (151936 rows) and the real special-token ids, tied embeddings, width 8."""
    vocab = 151936
    return {
        "name": "tiny_r",
        "dtype": torch.bfloat16,
        "real_vocab": True,
        "thinker_config": {
            "model_type": "qwen2_5_omni_thinker",
            "audio_config": {
                "model_type": "qwen2_5_omni_audio_encoder",
                "d_model": 16, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                "encoder_layers": 1, "output_dim": 8,
            },
            "text_config": {
                "model_type": "qwen2_5_omni_text",
                "vocab_size": vocab, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                "rope_theta": 1000000.0,
                "rope_scaling": {"mrope_section": [1, 1, 0], "rope_type": "default", "type": "default"},
                "tie_word_embeddings": True,
            },
            "vision_config": {
                "model_type": "qwen2_5_omni_vision_encoder",
                "depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                "patch_size": 2, "temporal_patch_size": 2, "spatial_merge_size": 2,
                "window_size": 8, "out_hidden_size": 8, "fullatt_block_indexes": [0],
            },
            # The published ids (added_tokens.json), written out like the real config.json.
            "audio_token_index": REAL_IDS["audio"], "audio_start_token_id": REAL_IDS["audio_bos"],
            "audio_end_token_id": REAL_IDS["audio_eos"], "image_token_index": REAL_IDS["image"],
            "video_token_index": REAL_IDS["video"], "vision_start_token_id": REAL_IDS["vision_bos"],
            "vision_end_token_id": REAL_IDS["vision_eos"], "user_token_id": 872,
            "tie_word_embeddings": True,
        },
    }


CONFIGS = [tiny_a, tiny_b, tiny_r]

# Real-vocabulary logits are 0.6 MB per position: tiny_r's goldens keep these columns of them
# (every id from <|endoftext|> up, i.e. all special tokens, plus a spread of ordinary ids).
FIRST_SPECIAL_ID = 151643
LOGIT_COLUMNS = list(range(0, FIRST_SPECIAL_ID, 397)) + list(range(FIRST_SPECIAL_ID, 151936))


def randomize(model, seed):
    """Random weights of realistic scale: the default init (std 0.02, zero biases, unit norms) would
    leave biases and norm weights untested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name or "ln_" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def published_name(name):
    """transformers v5 module path -> the published checkpoints' tensor name."""
    for ours, theirs in (("model.audio_tower.", "thinker.audio_tower."), ("model.visual.", "thinker.visual."),
                         ("model.language_model.", "thinker.model."), ("lm_head.", "thinker.lm_head.")):
        if name.startswith(ours):
            return theirs + name[len(ours):]
    raise ValueError(f"unexpected parameter {name}")


def write_checkpoint(spec, out_dir):
    cfg_json = spec["thinker_config"]
    config = Qwen2_5OmniThinkerConfig(**copy.deepcopy(cfg_json))
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    randomize(model, seed=1234 + len(spec["name"]) + cfg_json["text_config"]["vocab_size"])
    with torch.no_grad():  # the goldens use the weights as stored (bf16-rounded for tiny_b)
        for p in model.parameters():
            p.copy_(p.to(spec["dtype"]).float())
    tied = cfg_json["text_config"].get("tie_word_embeddings", False)
    # Like the published checkpoints with tied embeddings: no lm_head tensor is stored.
    tensors = {published_name(k): v.detach().to(spec["dtype"]).contiguous()
               for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    top = {
        "architectures": ["Qwen2_5OmniModel"],
        "model_type": "qwen2_5_omni",
        "enable_audio_output": False,
        "thinker_config": cfg_json,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(top, f, indent=2, sort_keys=True)
        f.write("\n")

    # Reload through transformers' checkpoint conversion: the published names must map onto the model.
    reloaded, info = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(
        out_dir, config=config, output_loading_info=True, dtype=torch.float32)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, bad
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1.float(), p2.float()), n1
    # The config layout is read as intended.
    rp = reloaded.config.text_config.rope_parameters
    want = cfg_json["text_config"].get("rope_parameters") or {
        "rope_theta": cfg_json["text_config"]["rope_theta"], **cfg_json["text_config"]["rope_scaling"]}
    assert rp["rope_theta"] == want["rope_theta"] and list(rp["mrope_section"]) == want["mrope_section"], rp
    reloaded.config._attn_implementation = "eager"
    reloaded.config.text_config._attn_implementation = "eager"
    reloaded.config.audio_config._attn_implementation = "eager"
    return reloaded.eval(), reloaded.config


def encoder_tokens(frames):
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


def audio_embeds(model, feats):
    """feats [128, T] -> [N, output_dim] through the thinker's audio path."""
    mask = torch.ones(1, feats.shape[1], dtype=torch.long)
    out = model.get_audio_features(feats.unsqueeze(0), feature_attention_mask=mask, return_dict=True)
    return out.last_hidden_state


def thinker_outputs(model, input_ids, feats):
    kwargs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if feats is not None:
        kwargs["input_features"] = feats.unsqueeze(0)
        kwargs["feature_attention_mask"] = torch.ones(1, feats.shape[1], dtype=torch.long)
    base = model.model(**kwargs, use_cache=False)
    hidden = base.last_hidden_state  # after the final RMSNorm
    logits = model.lm_head(hidden)
    full = model(**kwargs, use_cache=False).logits
    assert torch.equal(full, logits), "lm_head(final hidden) must be the model's logits"
    return logits.contiguous(), hidden.contiguous()


def prompt_ids(cfg, gen, n_audio):
    """A chat-shaped prompt: random text ids below every special id, with one audio placeholder run."""
    special = min(cfg.audio_token_id, cfg.audio_start_token_id, cfg.audio_end_token_id,
                  cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id)
    if cfg.text_config.vocab_size > FIRST_SPECIAL_ID:
        special = FIRST_SPECIAL_ID  # the real vocabulary: ordinary tokens only
    text = lambda n: torch.randint(0, special, (n,), generator=gen).tolist()
    if n_audio == 0:
        return text(13)
    return (text(7) + [cfg.audio_start_token_id] + [cfg.audio_token_id] * n_audio
            + [cfg.audio_end_token_id] + text(6))


def logit_outputs(spec, logits, hidden):
    """The golden tensors of a thinker run (a column subset of real-vocabulary logits)."""
    if not spec.get("real_vocab"):
        return {"logits": logits, "hidden_states": hidden}
    columns = torch.tensor(LOGIT_COLUMNS, dtype=torch.long)
    return {"logit_columns": columns, "logits_at_columns": logits[:, :, columns].contiguous(),
            "argmax": logits.argmax(-1).contiguous(), "hidden_states": hidden}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="assets/goldens/qwen")
    args = ap.parse_args()
    torch.set_num_threads(1)  # bit-stable reruns
    os.makedirs(args.out, exist_ok=True)

    gen = torch.Generator().manual_seed(20250520)
    features = {}
    for t in FRAME_COUNTS:
        # Normalised Whisper log-mel lies in about [-1, 1.5]; any values exercise the maths.
        feats = (torch.rand(128, t, generator=gen) * 2.0 - 0.75).contiguous()
        features[t] = feats
        save_file({"input_features": feats}, os.path.join(args.out, f"features_{t}.safetensors"))

    for spec_fn in CONFIGS:
        spec = spec_fn()
        cdir = os.path.join(args.out, spec["name"])
        model, cfg = write_checkpoint(spec, os.path.join(cdir, "checkpoint"))
        with torch.no_grad():
            for t, feats in features.items():
                emb = audio_embeds(model, feats).contiguous()
                assert emb.shape == (encoder_tokens(t), cfg.audio_config.output_dim), emb.shape
                save_file({"audio_embeds": emb}, os.path.join(cdir, f"audio_encoder_{t}.safetensors"))
                print(f"{spec['name']}: audio {t} frames -> {tuple(emb.shape)}")

            ids = torch.tensor([prompt_ids(cfg, gen, 0)], dtype=torch.long)
            logits, hidden = thinker_outputs(model, ids, None)
            save_file({"input_ids": ids}, os.path.join(cdir, "thinker_text_inputs.safetensors"))
            save_file(logit_outputs(spec, logits, hidden), os.path.join(cdir, "thinker_text.safetensors"))

            # tiny_a: exactly one 2 s block; tiny_b: 0.7 s = one 0.5 s block and a partial one;
            # tiny_r: 0.7 s, a partial 2 s block.
            t = 200 if spec["name"] == "tiny_a" else 70
            n_audio = encoder_tokens(t)
            ids = torch.tensor([prompt_ids(cfg, gen, n_audio)], dtype=torch.long)
            logits, hidden = thinker_outputs(model, ids, features[t])
            # TMRoPE ids through the full 3-D path of get_rope_index: an (empty) image grid forces it,
            # since with audio alone transformers falls back to cumsum(attention_mask) - 1.
            pos3d, delta = model.model.get_rope_index(
                ids, image_grid_thw=torch.zeros(0, 3, dtype=torch.long),
                attention_mask=torch.ones_like(ids), audio_seqlens=torch.tensor([t]))
            pos1d, _ = model.model.get_rope_index(ids, attention_mask=torch.ones_like(ids))
            assert torch.equal(pos3d, pos1d), "audio-only positions must equal the 1-D fallback"
            assert int(delta) == 0
            save_file({"input_ids": ids, "input_features": features[t]},
                      os.path.join(cdir, "thinker_audio_inputs.safetensors"))
            save_file({**logit_outputs(spec, logits, hidden), "position_ids": pos3d.contiguous()},
                      os.path.join(cdir, "thinker_audio.safetensors"))
            print(f"{spec['name']}: thinker audio prompt of {t} frames: logits {tuple(logits.shape)}")

            if spec.get("real_vocab"):
                continue
            # Every clip length for both small-vocabulary configs. A generator of its own, so the
            # goldens above stay what they were.
            extra = torch.Generator().manual_seed(20251203 + len(spec["name"]))
            for other in FRAME_COUNTS:
                if other == t:
                    continue
                ids = torch.tensor([prompt_ids(cfg, extra, encoder_tokens(other))], dtype=torch.long)
                logits, hidden = thinker_outputs(model, ids, features[other])
                pos3d, _ = model.model.get_rope_index(
                    ids, image_grid_thw=torch.zeros(0, 3, dtype=torch.long),
                    attention_mask=torch.ones_like(ids), audio_seqlens=torch.tensor([other]))
                tail = ids.shape[1] - THINKER_AUDIO_TAIL
                assert int(ids[0, tail]) == cfg.audio_end_token_id
                save_file({"input_ids": ids},
                          os.path.join(cdir, f"thinker_audio_{other}_ids.safetensors"))
                save_file({"hidden_states": hidden,
                           "logits_tail": logits[:, tail:].contiguous(),
                           "position_ids": pos3d.contiguous()},
                          os.path.join(cdir, f"thinker_audio_{other}.safetensors"))
                print(f"{spec['name']}: thinker audio prompt of {other} frames: {ids.shape[1]} positions")

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"total {total / 1e6:.2f} MB in {args.out}")
    assert total < 4_800_000, "Qwen goldens must stay under 4.8 MB"


if __name__ == "__main__":
    sys.exit(main())
