"""A tiny random full Qwen2.5-Omni checkpoint (Thinker + Talker + Token2Wav + spk_dict.pt +
tokenizer.json) and transformers' greedy `generate` on it: the text ids and the codec ids the
reference hands to Token2Wav, for `parley reference-check --component generate` and the Rust
Thinker -> Talker path (talker/src/qwen/talker_session.rs).

  assets/goldens/qwen_omni/tiny_full/
    checkpoint/   config.json (thinker_config like tiny_a's, talker_config, token2wav_config),
                  model.safetensors (thinker.*, talker.*, token2wav.*), spk_dict.pt, tokenizer.json
    generate_inputs.safetensors  input_ids i64 [1, L] (a ChatML prompt)
    generate.safetensors         text_ids i64 [1, n] (new tokens only, greedy, at most 8),
                                 codec_ids i64 [1, m] (greedy Talker, at most 64, repetition
                                 penalty 1.05, BOS suppressed, EOS {pad, end}; speaker Chelsie)

transformers 5.23 loses the Talker's attention mask inside `generate` and with it the codec
pad/BOS embeddings of the prefill; the script restores the mask (see `prepare_with_mask`) so the
golden follows the dual-track input the model was trained with.

The tiny vocabularies remap the Talker's ids: codec pad/bos/eos/mask 300/301/302/304 (of 320),
text pad/bos/eos 381/382/383 and the speakers' text-BOS 360 (Chelsie) / 361 (Ethan) in the
Thinker's 384.

    .venv/bin/python tools/reference/qwen_generate_golden.py
"""

import copy
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

import transformers
from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(__file__))
import qwen_omni_goldens  # noqa: E402
import qwen_token2wav_goldens  # noqa: E402

assert transformers.__version__ == "5.23.0", transformers.__version__

OUT = "assets/goldens/qwen_omni/tiny_full"
TOKENIZER = "assets/goldens/qwen/tiny_a/checkpoint/tokenizer.json"


def main():
    torch.set_num_threads(1)
    thinker = copy.deepcopy(qwen_omni_goldens.tiny_a()["thinker_config"])
    talker = dict(vocab_size=320, embedding_size=thinker["text_config"]["hidden_size"], hidden_size=32,
                  intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                  head_dim=16, rope_theta=1000000.0, rms_norm_eps=1e-6,
                  rope_scaling={"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
                  tts_codec_pad_token_id=300, tts_codec_start_token_id=301, tts_codec_end_token_id=302,
                  tts_codec_mask_token_id=304, tts_text_pad_token_id=381, tts_text_start_token_id=382,
                  tts_text_end_token_id=383,
                  audio_token_index=thinker["audio_token_index"], image_token_index=thinker["image_token_index"],
                  video_token_index=thinker["video_token_index"],
                  vision_start_token_id=thinker["vision_start_token_id"],
                  vision_end_token_id=thinker["vision_end_token_id"],
                  audio_start_token_id=thinker["audio_start_token_id"],
                  audio_end_token_id=thinker["audio_end_token_id"])
    t2w_spec = qwen_token2wav_goldens.CONFIGS["t2w_b"]
    token2wav = {"dit_config": dict(t2w_spec["dit"], num_embeds=299), "bigvgan_config": t2w_spec["bigvgan"]}
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
                for name, bos in (("Chelsie", 360), ("Ethan", 361))}
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
    ids = torch.tensor([tok.encode(prompt).ids], dtype=torch.long)
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
                                      thinker_max_new_tokens=8, thinker_do_sample=False,
                                      thinker_eos_token_id=[tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")],
                                      talker_max_new_tokens=64, talker_do_sample=False,
                                      talker_eos_token_id=[300, 302])
    text_ids = sequences[:, ids.shape[1]:]
    codes = captured["code"]
    os.makedirs(OUT, exist_ok=True)
    save_file({"input_ids": ids}, os.path.join(OUT, "generate_inputs.safetensors"))
    save_file({"text_ids": text_ids.contiguous(), "codec_ids": codes.long().contiguous()},
              os.path.join(OUT, "generate.safetensors"))
    print("text", text_ids.tolist(), "codes", codes.shape, codes[0, :12].tolist())
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
