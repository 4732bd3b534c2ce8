"""Tiny random Qwen2.5-Omni Token2Wav checkpoints (DiT + BigVGAN) and transformers goldens for the
candle port (talker/src/qwen/{dit,ecapa,sampler,bigvgan}.rs).

What it does
  Builds two tiny Token2Wav models with transformers' own classes and random weights, writes each
  as a checkpoint directory in the published layout (config.json with `token2wav_config.{dit_config,
  bigvgan_config}`, weights `token2wav.code2wav_dit_model.*` / `token2wav.code2wav_bigvgan_model.*`
  in model.safetensors) and the goldens in the tensor layout of `parley reference-check`:

  assets/goldens/qwen_token2wav/<config>/
    checkpoint/config.json, model.safetensors
    dit_inputs.safetensors        x [1, N, 80], code i64 [1, N/2], cond [1, enc_emb_dim],
                                  ref_mel [1, T, 80], t [1]
    dit.safetensors               v_cond, v_uncond [1, N, 80] (the two halves of the CFG batch)
    bigvgan_inputs.safetensors    mel [1, 80, T]
    bigvgan.safetensors           wav [1, T * hop]
    token2wav_inputs.safetensors  code [1, n], cond, ref_mel, noise [1, 2n, 80]
    token2wav.safetensors         mel [1, 80, 2n], wav [1, 2n * hop]  (10 steps, RK4, guidance 0.5,
                                  sway -1; `noise` replaces the sampler's torch.randn draw)

  The configs:
  - t2w_a: DiT 3 layers (look-back 0 and 2, look-ahead 1), block 24, 2 heads of 16; BigVGAN with the
    published upsampling (5,3,2,2,2,2 = x240) from 64 channels, resblock kernels 3 and 7.
    N = 60 frames (a partial third block).
  - t2w_b: DiT 4 layers, 4 heads of 8, look-ahead 2 / look-back 0, rope theta 500, another ECAPA
    shape (Res2Net scale 3); BigVGAN x12 (rates 4,3). N = 74 frames.
  transformers 5.23 builds the DiT RoPE in the checkpoints' interleaved layout (it de-interleaves q/k
  of head 0 before a half-split rotation, equivalent for attention), so no patch is needed.

  Streaming (Qwen's vLLM code2wav as ../shared/docs/qwen2_5_omni.md §5.6 describes it, written here
  with transformers' modules): token2wav_stream_inputs.safetensors (code [1, 75], cond, ref_mel,
  noise [1, 150, 80]) and token2wav_stream.safetensors: `wav` of the chunked algorithm (chunks of
  48 mel frames, DiT windows with 48 frames of past and 24 of future context cut from the one
  noise tensor by absolute index, vocoder over the previous chunk's last 40 frames + the chunk,
  20 frames of overlap trimmed on each side) and `offline_wav` (the whole utterance at once).

How to run (from the repo root; CPU, seconds, deterministic)
    .venv/bin/python tools/reference/qwen_token2wav_goldens.py
"""

import json
import os

import torch
from safetensors.torch import save_file

import transformers
from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import (
    Qwen2_5OmniBigVGANConfig, Qwen2_5OmniDiTConfig)
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import (
    Qwen2_5OmniToken2WavBigVGANModel, Qwen2_5OmniToken2WavDiTModel)

assert transformers.__version__ == "5.23.0", transformers.__version__
assert torch.__version__.startswith("2.15.0"), torch.__version__

OUT = "assets/goldens/qwen_token2wav"

CONFIGS = {
    "t2w_a": dict(
        dit=dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, head_dim=16, ff_mult=2,
                 emb_dim=12, num_embeds=40, repeats=2, mel_dim=80, block_size=24,
                 look_ahead_layers=[1], look_backward_layers=[0, 2], enc_emb_dim=10, enc_dim=8,
                 enc_channels=[8, 8, 8, 16], enc_kernel_sizes=[5, 3, 3, 1], enc_dilations=[1, 2, 3, 1],
                 enc_attention_channels=6, enc_res2net_scale=2, enc_se_channels=4),
        bigvgan=dict(mel_dim=80, upsample_initial_channel=64, resblock_kernel_sizes=[3, 7],
                     resblock_dilation_sizes=[[1, 3, 5]] * 2, upsample_rates=[5, 3, 2, 2, 2, 2],
                     upsample_kernel_sizes=[11, 7, 4, 4, 4, 4]),
        frames=60, vocoder_frames=12, post_gain=0.02),
    "t2w_b": dict(
        dit=dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, head_dim=8, ff_mult=3,
                 emb_dim=16, num_embeds=50, repeats=2, mel_dim=80, block_size=24,
                 look_ahead_layers=[2], look_backward_layers=[0], enc_emb_dim=12, enc_dim=6,
                 enc_channels=[12, 12, 12, 24], enc_kernel_sizes=[3, 3, 3, 1],
                 enc_dilations=[1, 2, 3, 1],
                 enc_attention_channels=8, enc_res2net_scale=3, enc_se_channels=5,
                 rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
        bigvgan=dict(mel_dim=80, upsample_initial_channel=48, resblock_kernel_sizes=[3, 5],
                     resblock_dilation_sizes=[[1, 2, 3], [1, 3, 5]], upsample_rates=[4, 3],
                     upsample_kernel_sizes=[8, 7]),
        frames=74, vocoder_frames=30, post_gain=0.2),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".alpha") or name.endswith(".beta"):  # SnakeBeta, log scale
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=gen) / max(1, fan_in) ** 0.5)


CHUNK, PAST, FUTURE, OVERLAP = 48, 48, 24, 20
STREAM_CODES = 75


def sample_with_noise(dit, cond, ref_mel, code, noise):
    """DiT.sample with `noise` as its initial state (its only random draw)."""
    original_randn = torch.randn
    torch.randn = lambda *a, **k: noise.clone()
    try:
        return dit.sample(cond, ref_mel, code, num_steps=10, guidance_scale=0.5, sway_coefficient=-1.0)
    finally:
        torch.randn = original_randn


def streamed(dit, voc, gen, d):
    """The chunked code -> audio algorithm and the offline result, for the same noise."""
    code = torch.randint(0, d["num_embeds"] + 1, (1, STREAM_CODES), generator=gen)
    cond = torch.randn(1, d["enc_emb_dim"], generator=gen)
    ref_mel = torch.randn(1, 30, 80, generator=gen) - 4.0
    total = 2 * STREAM_CODES
    noise = torch.randn(1, total, 80, generator=gen)
    hop = 1
    pieces, prev_mel, start = [], None, 0
    while start < total:
        end = min(start + CHUNK, total)
        last = end == total
        w0, w1 = max(0, start - PAST), min(total, end + FUTURE)
        mel = sample_with_noise(dit, cond, ref_mel, code[:, w0 // 2:w1 // 2], noise[:, w0:w1])
        chunk = mel[:, :, start - w0:end - w0]
        if prev_mel is None:
            wav = voc(chunk).reshape(-1)
            hop = wav.shape[0] // chunk.shape[2]
            keep = wav if last else wav[: (chunk.shape[2] - OVERLAP) * hop]
        else:
            context = prev_mel[:, :, -2 * OVERLAP:]  # the previous chunk's last 40 frames
            wav = voc(torch.cat([context, chunk], dim=2)).reshape(-1)
            first = (context.shape[2] - OVERLAP) * hop
            keep = wav[first:] if last else wav[first: wav.shape[0] - OVERLAP * hop]
        pieces.append(keep)
        prev_mel, start = chunk, end
    offline_mel = sample_with_noise(dit, cond, ref_mel, code, noise)
    inputs = {"code": code, "cond": cond, "ref_mel": ref_mel, "noise": noise}
    return inputs, {"wav": torch.cat(pieces).reshape(1, -1).contiguous(),
                    "offline_wav": voc(offline_mel).reshape(1, -1).contiguous()}


def main():
    torch.set_num_threads(1)
    for name, spec in CONFIGS.items():
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        dit_cfg = Qwen2_5OmniDiTConfig(**spec["dit"])
        dit_cfg._attn_implementation = "sdpa"
        dit = Qwen2_5OmniToken2WavDiTModel(dit_cfg).eval()
        voc_cfg = Qwen2_5OmniBigVGANConfig(**spec["bigvgan"])
        voc = Qwen2_5OmniToken2WavBigVGANModel(voc_cfg).eval()
        randomize(dit, gen)
        randomize(voc, gen)
        with torch.no_grad():
            # Random weights give a signal hundreds of times full scale, which the final clamp
            # would flatten; scale the last conv so the audio stays inside [-1, 1] and every
            # sample is compared.
            voc.conv_post.weight.mul_(spec["post_gain"])

        cdir = os.path.join(OUT, name)
        os.makedirs(os.path.join(cdir, "checkpoint"), exist_ok=True)
        tensors = {f"token2wav.code2wav_dit_model.{k}": v.contiguous() for k, v in dit.state_dict().items()}
        tensors.update({f"token2wav.code2wav_bigvgan_model.{k}": v.contiguous()
                        for k, v in voc.state_dict().items()})
        save_file(tensors, os.path.join(cdir, "checkpoint", "model.safetensors"), metadata={"format": "pt"})
        config = {"architectures": ["Qwen2_5OmniModel"], "model_type": "qwen2_5_omni",
                  "token2wav_config": {"dit_config": spec["dit"], "bigvgan_config": spec["bigvgan"]}}
        with open(os.path.join(cdir, "checkpoint", "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")

        n_frames = spec["frames"]
        d = spec["dit"]
        with torch.no_grad():
            x = torch.randn(1, n_frames, 80, generator=gen)
            code = torch.randint(0, d["num_embeds"] + 1, (1, n_frames // 2), generator=gen)
            cond = torch.randn(1, d["enc_emb_dim"], generator=gen)
            ref_mel = torch.randn(1, 30, 80, generator=gen) - 4.0
            t = torch.tensor([0.37])
            out = dit(hidden_states=x, condition_vector=ref_mel,
                      speaker_embedding=cond.unsqueeze(1).repeat(1, n_frames, 1),
                      quantized_code=code, time_step=t, apply_cfg=True)
            save_file({"x": x, "code": code, "cond": cond, "ref_mel": ref_mel, "t": t},
                      os.path.join(cdir, "dit_inputs.safetensors"))
            save_file({"v_cond": out[:1].contiguous(), "v_uncond": out[1:].contiguous()},
                      os.path.join(cdir, "dit.safetensors"))

            mel = torch.randn(1, 80, spec["vocoder_frames"], generator=gen) * 2.0 - 5.0
            wav = voc(mel)
            save_file({"mel": mel}, os.path.join(cdir, "bigvgan_inputs.safetensors"))
            save_file({"wav": wav.reshape(1, -1).contiguous()}, os.path.join(cdir, "bigvgan.safetensors"))

            noise = torch.randn(1, n_frames, 80, generator=gen)
            original_randn = torch.randn
            torch.randn = lambda *a, **k: noise.clone()  # the sampler's only random draw
            try:
                t2w_mel = dit.sample(cond, ref_mel, code, num_steps=10, guidance_scale=0.5,
                                     sway_coefficient=-1.0)
            finally:
                torch.randn = original_randn
            t2w_wav = voc(t2w_mel)
            save_file({"code": code, "cond": cond, "ref_mel": ref_mel, "noise": noise},
                      os.path.join(cdir, "token2wav_inputs.safetensors"))
            save_file({"mel": t2w_mel.contiguous(), "wav": t2w_wav.reshape(1, -1).contiguous()},
                      os.path.join(cdir, "token2wav.safetensors"))
            stream_inputs, stream_out = streamed(dit, voc, gen, d)
            save_file(stream_inputs, os.path.join(cdir, "token2wav_stream_inputs.safetensors"))
            save_file(stream_out, os.path.join(cdir, "token2wav_stream.safetensors"))
        clipped = float((wav.abs() >= 1.0).float().mean())
        assert clipped < 0.05, f"{name}: {clipped:.0%} of the vocoder's samples clip"
        print(name, "dit", tuple(out.shape), "wav", tuple(wav.shape), f"peak {float(wav.abs().max()):.2f}",
              "t2w", tuple(t2w_mel.shape), f"peak {float(t2w_wav.abs().max()):.2f}")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total / 1e6:.2f} MB")
    assert total < 2_400_000, "Token2Wav goldens must stay under 2.4 MB"


if __name__ == "__main__":
    main()
