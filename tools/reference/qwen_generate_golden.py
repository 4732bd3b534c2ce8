"""Tiny random full Qwen2.5-Omni checkpoints (Thinker + Talker + Token2Wav + spk_dict.pt +
tokenizer.json) and transformers' greedy `generate` on them: the text ids and the codec ids the
reference hands to Token2Wav, for `parley reference-check --component generate` and the Rust
Thinker -> Talker path (talker/src/qwen/talker_session.rs). Two configs:

  - tiny_full: tiny_a's Thinker (published rope layout), a 2-layer Talker, t2w_b's Token2Wav; a
    text prompt.
  - tiny_full_b: tiny_b's Thinker shapes (rope_parameters layout, GQA 3:1, 0.5 s audio blocks) on
    tiny_a's vocabulary, a 3-layer Talker with 3 heads and other codec ids, t2w_a's Token2Wav; a
    spoken prompt (features_70: one whole 0.5 s block and a partial one), so the Talker's input
    has audio positions (embedding zeroed) and TMRoPE audio positions.

  assets/goldens/qwen_omni/<config>/
    checkpoint/   config.json (thinker_config like tiny_a's, talker_config, token2wav_config),
                  model.safetensors (thinker.*, talker.*, token2wav.*), spk_dict.pt, tokenizer.json
    generate_inputs.safetensors  input_ids i64 [1, L] (a ChatML prompt), and for tiny_full_b
                                 input_features f32 [128, 70]
    generate.safetensors         text_ids i64 [1, n] (new tokens only, greedy, at most 8),
                                 codec_ids i64 [1, m] (greedy Talker, at most 64, repetition
                                 penalty 1.05, BOS suppressed, EOS {pad, end}; speaker Chelsie)

transformers 5.23 loses the Talker's attention mask inside `generate` and with it the codec
pad/BOS embeddings of the prefill; the script restores the mask (see `prepare_with_mask`) so the
golden follows the dual-track input the model was trained with.

The tiny vocabularies remap the Talker's ids: tiny_full codec pad/bos/eos/mask 300/301/302/304
(of 320), tiny_full_b 290/291/292/294 (of 300); text pad/bos/eos 381/382/383 and the speakers'
text-BOS 360/361 (tiny_full_b 370/371) for Chelsie/Ethan in the Thinker's 384.

    .venv/bin/python tools/reference/qwen_generate_golden.py [tiny_full|tiny_full_b ...]
"""

import copy
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

import transformers
from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(__file__))
import qwen_omni_goldens  # noqa: E402
import qwen_token2wav_goldens  # noqa: E402

assert transformers.__version__ == "5.23.0", transformers.__version__

OUT_ROOT = "assets/goldens/qwen_omni"
TOKENIZER = "assets/goldens/qwen/tiny_a/checkpoint/tokenizer.json"
FEATURES_70 = "assets/goldens/qwen/features_70.safetensors"


def tiny_full_b_thinker():
    """tiny_b's shapes and rope layout with tiny_a's vocabulary and special ids (its tokenizer)."""
    thinker = copy.deepcopy(qwen_omni_goldens.tiny_b()["thinker_config"])
    ids_from = qwen_omni_goldens.tiny_a()["thinker_config"]
    thinker["text_config"]["vocab_size"] = ids_from["text_config"]["vocab_size"]
    for key, value in ids_from.items():
        if key.endswith("_token_id") or key.endswith("_token_index"):
            thinker[key] = value
    return thinker


SPECS = {
    "tiny_full": dict(thinker=lambda: copy.deepcopy(qwen_omni_goldens.tiny_a()["thinker_config"]),
                      talker=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                  mrope_section=[2, 3, 3]),
                      codec=(300, 301, 302, 304), vocab=320, t2w="t2w_b", speaker_bos=(360, 361), audio=False),
    "tiny_full_b": dict(thinker=tiny_full_b_thinker,
                        talker=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3,
                                    num_attention_heads=3, num_key_value_heads=1, head_dim=16,
                                    mrope_section=[2, 2, 4]),
                        codec=(290, 291, 292, 294), vocab=300, t2w="t2w_a", speaker_bos=(370, 371), audio=True),
}


def main():
    torch.set_num_threads(1)
    for name in sys.argv[1:] or list(SPECS):
        build(name, SPECS[name])


def build(name, spec):
    OUT = os.path.join(OUT_ROOT, name)
    thinker = spec["thinker"]()
    shape = spec["talker"]
    pad, start, end, mask = spec["codec"]
    talker = dict(vocab_size=spec["vocab"], embedding_size=thinker["text_config"]["hidden_size"],
                  hidden_size=shape["hidden_size"], intermediate_size=shape["intermediate_size"],
                  num_hidden_layers=shape["num_hidden_layers"], num_attention_heads=shape["num_attention_heads"],
                  num_key_value_heads=shape["num_key_value_heads"], head_dim=shape["head_dim"],
                  rope_theta=1000000.0, rms_norm_eps=1e-6,
                  rope_scaling={"mrope_section": shape["mrope_section"], "rope_type": "default", "type": "default"},
                  tts_codec_pad_token_id=pad, tts_codec_start_token_id=start, tts_codec_end_token_id=end,
                  tts_codec_mask_token_id=mask, tts_text_pad_token_id=381, tts_text_start_token_id=382,
                  tts_text_end_token_id=383,
                  audio_token_index=thinker["audio_token_index"], image_token_index=thinker["image_token_index"],
                  video_token_index=thinker["video_token_index"],
                  vision_start_token_id=thinker["vision_start_token_id"],
                  vision_end_token_id=thinker["vision_end_token_id"],
                  audio_start_token_id=thinker["audio_start_token_id"],
                  audio_end_token_id=thinker["audio_end_token_id"])
    t2w_spec = qwen_token2wav_goldens.CONFIGS[spec["t2w"]]
    token2wav = {"dit_config": dict(t2w_spec["dit"], num_embeds=pad - 1), "bigvgan_config": t2w_spec["bigvgan"]}
    cfg_json = {"architectures": ["Qwen2_5OmniModel"], "model_type": "qwen2_5_omni", "enable_audio_output": True,
                "thinker_config": thinker, "talker_config": talker, "token2wav_config": token2wav}
    config = Qwen2_5OmniConfig(**copy.deepcopy({k: v for k, v in cfg_json.items() if k not in ("architectures",)}))
    config.thinker_config._attn_implementation = "eager"
    config.thinker_config.text_config._attn_implementation = "eager"
    config.thinker_config.audio_config._attn_implementation = "eager"
    config.talker_config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen2_5OmniForConditionalGeneration(config).eval()
    gen = torch.Generator().manual_seed(4242)
    qwen_omni_goldens.randomize(model, seed=4242)

    ckpt = os.path.join(OUT, "checkpoint")
    os.makedirs(ckpt, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        for ours, theirs in (("thinker.model.audio_tower.", "thinker.audio_tower."),
                             ("thinker.model.visual.", "thinker.visual."),
                             ("thinker.model.language_model.", "thinker.model.")):
            if k.startswith(ours):
                k = theirs + k[len(ours):]
                break
        tensors[k] = v.detach().contiguous()
    save_file(tensors, os.path.join(ckpt, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(cfg_json, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copy(TOKENIZER, os.path.join(ckpt, "tokenizer.json"))
    speakers = {name: {"bos_token": bos, "cond": torch.randn(1, t2w_spec["dit"]["enc_emb_dim"], generator=gen),
                       "ref_mel": torch.randn(1, 30, 80, generator=gen) - 4.0}
                for name, bos in zip(("Chelsie", "Ethan"), spec["speaker_bos"])}
    torch.save(speakers, os.path.join(ckpt, "spk_dict.pt"))

    # Reload through from_pretrained: the published names must map onto the model (every
    # tensor comes back equal; `output_loading_info` breaks this class's from_pretrained in 5.23).
    original = {k: v.clone() for k, v in model.state_dict().items()}
    model = Qwen2_5OmniForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32)
    reloaded = model.state_dict()
    assert original.keys() == reloaded.keys()
    for k, v in original.items():
        assert torch.equal(v, reloaded[k]), k
    model.eval()
    model.load_speakers(os.path.join(ckpt, "spk_dict.pt"))

    tok = Tokenizer.from_file(TOKENIZER)
    prompt = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
              "What is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    generate_inputs = {}
    if spec["audio"]:
        # A spoken question: the user turn is the clip's placeholders.
        feats = load_file(FEATURES_70)["input_features"]
        head, tail = prompt.split("What is the capital of France?")
        n_audio = qwen_omni_goldens.encoder_tokens(feats.shape[1])
        ids = torch.tensor([tok.encode(head).ids + [thinker["audio_start_token_id"]]
                            + [thinker["audio_token_index"]] * n_audio + [thinker["audio_end_token_id"]]
                            + tok.encode(tail).ids], dtype=torch.long)
        audio_kwargs = dict(input_features=feats.unsqueeze(0),
                            feature_attention_mask=torch.ones(1, feats.shape[1], dtype=torch.long))
        generate_inputs["input_features"] = feats.contiguous()
    else:
        ids = torch.tensor([tok.encode(prompt).ids], dtype=torch.long)
        audio_kwargs = {}
    captured = {}

    def capture(code, conditioning, reference_mel, **kwargs):
        captured["code"] = code.clone()
        return torch.zeros(1, 240)

    model.token2wav.forward = capture
    # transformers 5.23 reaches the Talker's forward with no attention mask and generic position
    # ids, so its prefill branch is skipped: no codec pad/BOS embeddings on the last two positions
    # and no get_rope_index / rope_deltas. The Talker was trained with them (transformers 4.5x,
    # Qwen's vLLM engine: "spk_bos + codec_pad, (h + e)(g0) + codec_bos"), so hand the forward a
    # mask over the whole codec track and let it compute its own positions.
    talker_prepare = model.talker.prepare_inputs_for_generation

    def prepare_with_mask(input_ids, inputs_embeds=None, **kwargs):
        inputs = talker_prepare(input_ids, inputs_embeds=inputs_embeds, **kwargs)
        inputs["attention_mask"] = torch.ones_like(input_ids)
        inputs["position_ids"] = None
        return inputs

    model.talker.prepare_inputs_for_generation = prepare_with_mask
    with torch.no_grad():
        sequences, _ = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), speaker="Chelsie",
                                      **audio_kwargs,
                                      thinker_max_new_tokens=8, thinker_do_sample=False,
                                      thinker_eos_token_id=[tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")],
                                      talker_max_new_tokens=64, talker_do_sample=False,
                                      talker_eos_token_id=[pad, end])
    text_ids = sequences[:, ids.shape[1]:]
    codes = captured["code"]
    os.makedirs(OUT, exist_ok=True)
    save_file({"input_ids": ids, **generate_inputs}, os.path.join(OUT, "generate_inputs.safetensors"))
    save_file({"text_ids": text_ids.contiguous(), "codec_ids": codes.long().contiguous()},
              os.path.join(OUT, "generate.safetensors"))
    print(name, "text", text_ids.tolist(), "codes", codes.shape, codes[0, :12].tolist())
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
