"""Tiny random Qwen2.5-Omni Talker checkpoints and transformers goldens for the candle port
(talker/src/qwen/talker_model.rs), in the tensor layout of `parley reference-check --component
talker`:

  assets/goldens/qwen_talker/<config>/
    checkpoint/config.json        {"talker_config": {...}} as the published config.json spells it
    checkpoint/model.safetensors  talker.model.*, talker.thinker_to_talker_proj.*, talker.codec_head.*
    talker_inputs.safetensors     inputs_embeds f32 [1, L, embedding_size] (Thinker space, before
                                  thinker_to_talker_proj), position_ids i64 [3, 1, L]
    talker.safetensors            logits f32 [1, L, vocab]

  talker_a: explicit head_dim 16 with hidden 48 and 2 heads (q_proj 48 -> 32, like the 7B's 896 ->
            1536 layout), GQA 2:1, rope_scaling layout, mrope [2, 3, 3].
  talker_b: head_dim from the config (hidden 32 / 4 heads = 8 given explicitly), GQA 4:2,
            rope_parameters layout, theta 10000, mrope [1, 1, 2].
  Both use a small codec vocabulary (the codec ids in config.json remapped into it). The position
  ids differ per stream (like an audio-in-video prompt), so the M-RoPE sections are exercised.

    .venv/bin/python tools/reference/qwen_talker_goldens.py
"""

import json
import os

import torch
from safetensors.torch import save_file

import transformers
from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniTalkerConfig
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniTalkerForConditionalGeneration

assert transformers.__version__ == "5.23.0", transformers.__version__
assert torch.__version__.startswith("2.15.0"), torch.__version__

OUT = "assets/goldens/qwen_talker"
VOCAB = 320
CODEC_IDS = dict(tts_codec_pad_token_id=300, tts_codec_start_token_id=301, tts_codec_end_token_id=302,
                 tts_codec_mask_token_id=304)

CONFIGS = {
    "talker_a": dict(vocab_size=VOCAB, embedding_size=24, hidden_size=48, intermediate_size=64,
                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                     rope_theta=1000000.0, rms_norm_eps=1e-6,
                     rope_scaling={"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
                     **CODEC_IDS),
    "talker_b": dict(vocab_size=VOCAB, embedding_size=20, hidden_size=32, intermediate_size=40,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                     rms_norm_eps=1e-5,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
                     **CODEC_IDS),
}
LENGTH = 19


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def main():
    torch.set_num_threads(1)
    for name, cfg_json in CONFIGS.items():
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        config = Qwen2_5OmniTalkerConfig(**cfg_json)
        config._attn_implementation = "eager"
        model = Qwen2_5OmniTalkerForConditionalGeneration(config).eval()
        randomize(model, gen)
        cdir = os.path.join(OUT, name)
        os.makedirs(os.path.join(cdir, "checkpoint"), exist_ok=True)
        save_file({f"talker.{k}": v.contiguous() for k, v in model.state_dict().items()},
                  os.path.join(cdir, "checkpoint", "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(cdir, "checkpoint", "config.json"), "w") as f:
            json.dump({"architectures": ["Qwen2_5OmniModel"], "model_type": "qwen2_5_omni",
                       "talker_config": cfg_json}, f, indent=2, sort_keys=True)
            f.write("\n")

        embeds = torch.randn(1, LENGTH, cfg_json["embedding_size"], generator=gen)
        base = torch.arange(LENGTH)
        # Text, then a stretch where the streams differ (as around video frames), then text.
        t = base.clone()
        h = base.clone()
        w = base.clone()
        h[6:12] = 6 + torch.tensor([0, 0, 1, 1, 2, 2])
        w[6:12] = 6 + torch.tensor([0, 1, 0, 1, 0, 1])
        t[6:12] = 6
        t[12:] = t[12:] - 5
        h[12:] = t[12:]
        w[12:] = t[12:]
        positions = torch.stack([t, h, w]).unsqueeze(1).long()
        with torch.no_grad():
            out = model(inputs_embeds=embeds.clone(), position_ids=positions, use_cache=False)
        save_file({"inputs_embeds": embeds, "position_ids": positions},
                  os.path.join(cdir, "talker_inputs.safetensors"))
        save_file({"logits": out.logits.float().contiguous()}, os.path.join(cdir, "talker.safetensors"))
        print(name, tuple(out.logits.shape))
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total / 1e6:.2f} MB")
    assert total < 600_000


if __name__ == "__main__":
    main()
