"""Streaming Token2Wav goldens: Qwen's chunked code -> mel -> wav algorithm (their vLLM fork,
`Qwen2Code2wav.process_chunk` + `process_chunk_for_50hz`, as driven by `OmniLLMEngine`), run with
transformers 5.23's DiT and BigVGAN on the tiny checkpoints of `qwen_token2wav_goldens.py`, for a
streaming-equivalence test of the Rust port (`parley reference-check --component token2wav_stream`).

What it writes
  assets/goldens/qwen_token2wav_stream/<config>/    (checkpoint: qwen_token2wav/<config>/checkpoint)
    token2wav_stream_inputs.safetensors  code i64 [1, n], cond [1, enc_emb_dim], ref_mel [1, T, 80],
                                         noise [1, 2n, 80] (the engine's global `y_all`, sliced by
                                         absolute mel frame, so overlapping windows see the same noise)
    token2wav_stream.safetensors         wav f32 [1, 2n * hop] (the chunks' audio concatenated),
                                         mel f32 [1, 80, 2n] (each chunk's new DiT frames concatenated),
                                         chunk_samples i64 [k] (samples each chunk emitted, in order)
  The file metadata repeats the constants below.

The algorithm (Qwen vLLM fork, vllm-project/vllm 7bd0c48 `qwen2_code2wav_dit.py` / `omni_llm_engine.py`;
docs: ../shared/docs/qwen2_5_omni.md section 5.6), in mel frames (2 per codec token, 100 per second):
  - CHUNK = 48 (bs_mel 24 x batched_chunk 2, the `OmniLLMEngine` default at 50 Hz), PAST = 48
    (bs_mel x 2), FUTURE = 24 (bs_mel), vocoder overlap OVERLAP = 20 frames on each side.
  - The talker hands over its codes whenever 2 n - FUTURE is a positive multiple of CHUNK (36, 60,
    84, ... codes) and once more, marked finished, at the end. Chunk i's new frames are
    [i CHUNK, (i+1) CHUNK) (the finished chunk: up to the end); its DiT window is
    [max(i CHUNK - PAST, 0), min((i+1) CHUNK + FUTURE, 2 n)), sampled from the window's slice of the
    noise with the window's codes (10 steps, guidance 0.5, sway -1; RK4 3/8, which is both
    transformers' solver and torchdiffeq's "rk4", the `OmniLLMEngine` default), and the new frames
    are cut out of the window.
  - Vocoder: chunk 0 vocodes its 48 frames and emits all but the last OVERLAP frames' samples;
    chunk i > 0 vocodes (previous chunk's last 2 OVERLAP frames + its new frames) and emits from
    OVERLAP frames in to OVERLAP frames before the end (the finished chunk: to the end). The emitted
    spans tile [0, 2 n) frames exactly.
  - If the first hand-over is already the finished one (fewer than 36 codes), Qwen runs the
    one-shot Token2Wav instead; the configs here are long enough for 3 chunks.
  Two deviations from the vLLM code, both deliberate:
  - `process_chunk_for_50hz` picks the first-chunk branch by `start_index == 0`, which with
    CHUNK == PAST is also true for chunk 1 (window start max(48 - 48, 0) = 0), so chunk 1 would
    re-emit part of chunk 0's audio. The engine's dynamic-batch path (`step_batch`) cuts
    [PAST:-FUTURE] for every intermediate chunk, which is the intended behaviour; this script
    follows the intent (first-chunk branch for i == 0 only).
  - vLLM hard-codes 240 samples per frame (the published BigVGAN); here the hop is the product of
    the config's upsample rates (x240 for t2w_a, x12 for t2w_b).

DiT RoPE layout check (pitfall 4 of the doc): the published checkpoint was trained with the
interleaved-pair RoPE of transformers <= 4.57 (cos/sin laid out [f0, f0, f1, f1, ...] with
`rotate_half_codec`); v5.0's RoPE refactor broke it (cat layout), transformers 5.23 de-interleaves
q/k of head 0 and rotates half-split, which gives the same attention scores. `check_rope_layout`
re-runs the committed `dit` golden with the 4.57 attention patched in and asserts it is unchanged
(and that the broken v5.0 layout is not), so every Token2Wav golden follows the shipped behaviour.

How to run (from the repo root; CPU, under a minute, deterministic)
    .venv/bin/python tools/reference/qwen_token2wav_stream_golden.py
"""

import json
import math
import os

import torch
from safetensors.torch import load_file, save_file

import transformers
from transformers.models.qwen2_5_omni import modeling_qwen2_5_omni as hf
from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import (
    Qwen2_5OmniBigVGANConfig, Qwen2_5OmniDiTConfig)

assert transformers.__version__ == "5.23.0", transformers.__version__
assert torch.__version__.startswith("2.15.0"), torch.__version__

CHECKPOINTS = "assets/goldens/qwen_token2wav"  # written by qwen_token2wav_goldens.py
OUT = "assets/goldens/qwen_token2wav_stream"
CHUNK, PAST, FUTURE, OVERLAP = 48, 48, 24, 20
STEPS, GUIDANCE, SWAY = 10, 0.5, -1.0
# Codes per config: t2w_a ends with a long finished tail (160 frames: chunks [0,48), [48,96),
# then finished [96,160)); t2w_b ends exactly on a hand-over (168 frames: 2n - 24 = 3 x 48), so the
# finished chunk is the 24-frame look-ahead of the last regular one.
CODES = {"t2w_a": 80, "t2w_b": 84}


def load_models(name):
    """The DiT and BigVGAN of a committed tiny checkpoint, every tensor name checked."""
    ckpt = os.path.join(CHECKPOINTS, name, "checkpoint")
    with open(os.path.join(ckpt, "config.json")) as f:
        t2w = json.load(f)["token2wav_config"]
    dit_cfg = Qwen2_5OmniDiTConfig(**t2w["dit_config"])
    dit_cfg._attn_implementation = "sdpa"
    dit = hf.Qwen2_5OmniToken2WavDiTModel(dit_cfg).eval()
    voc = hf.Qwen2_5OmniToken2WavBigVGANModel(Qwen2_5OmniBigVGANConfig(**t2w["bigvgan_config"])).eval()
    tensors = load_file(os.path.join(ckpt, "model.safetensors"))
    for model, prefix in ((dit, "token2wav.code2wav_dit_model."), (voc, "token2wav.code2wav_bigvgan_model.")):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        model.load_state_dict(state, strict=True)
    hop = math.prod(t2w["bigvgan_config"]["upsample_rates"])
    return dit, voc, hop


def sample_window(dit, cond, ref_mel, codes, noise):
    """transformers' `sample` on one window, its only random draw replaced by the window's noise."""
    original_randn = torch.randn
    torch.randn = lambda *a, **k: noise.clone()
    try:
        mel = dit.sample(cond, ref_mel, codes, num_steps=STEPS, guidance_scale=GUIDANCE, sway_coefficient=SWAY)
    finally:
        torch.randn = original_randn
    return mel.permute(0, 2, 1)  # [1, frames, 80], the layout the chunker slices


def stream(dit, voc, hop, code, cond, ref_mel, noise):
    """Qwen's chunked Token2Wav over the codes handed over in full at the end (see the header)."""
    n_frames = code.shape[1] * 2
    hand_overs = [f // 2 for f in range(CHUNK + FUTURE, n_frames + 1, CHUNK)]  # codes at each hand-over
    assert hand_overs, "too few codes for streaming (Qwen runs the one-shot Token2Wav then)"
    calls = [(n, False) for n in hand_overs] + [(code.shape[1], True)]
    prev_mel, mels, audio = None, [], []
    for i, (n_codes, finished) in enumerate(calls):
        total = n_codes * 2
        start = max(i * CHUNK - PAST, 0)
        end = min((i + 1) * CHUNK + FUTURE, total)
        window = sample_window(dit, cond, ref_mel, code[:, start // 2:end // 2], noise[:, start:end])
        if i == 0:
            new = window[:, :CHUNK]
            vocoder_in = new
        else:
            new = window[:, PAST:] if finished else window[:, PAST:-FUTURE]
            vocoder_in = torch.cat([prev_mel[:, -2 * OVERLAP:], new], dim=1)
        wav = voc(vocoder_in.permute(0, 2, 1)).reshape(-1)
        assert wav.numel() == vocoder_in.shape[1] * hop
        if i == 0:
            wav = wav[:-OVERLAP * hop]
        elif finished:
            wav = wav[OVERLAP * hop:]
        else:
            wav = wav[OVERLAP * hop:-OVERLAP * hop]
        mels.append(new)
        audio.append(wav)
        prev_mel = new
        print(f"  chunk {i}: window [{start}, {end}) new {new.shape[1]} frames, {wav.numel()} samples"
              + (" (finished)" if finished else ""))
    mel = torch.cat(mels, dim=1)
    wav = torch.cat(audio)
    assert mel.shape[1] == n_frames and wav.numel() == n_frames * hop
    return mel.permute(0, 2, 1).contiguous(), wav.reshape(1, -1).contiguous(), [w.numel() for w in audio]


def attention_4_57(interleaved):
    """`DiTAttention.forward` as transformers <= 4.57 computes it: head 0 rotated in place by
    `rotate_half_codec` (adjacent pairs) with cos/sin built interleaved (`interleaved=True`, the
    shipped layout) or, to show the check can fail, concatenated (v5.0's regression)."""

    def rotate_half_codec(x):
        x = x.reshape(*x.shape[:-1], -1, 2)
        x1, x2 = x.unbind(dim=-1)
        return torch.stack((-x2, x1), dim=-1).reshape(*x.shape[:-2], -1)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None):
        batch, length = hidden_states.shape[:2]
        head_dim = self.inner_dim // self.heads
        q, k, v = (proj(hidden_states).view(batch, length, self.heads, head_dim).transpose(1, 2)
                   for proj in (self.to_q, self.to_k, self.to_v))
        base = self.config.rope_parameters["rope_theta"]
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        freqs = torch.arange(length).float()[:, None] * inv_freq[None, :]
        if interleaved:
            freqs = torch.stack((freqs, freqs), dim=-1).reshape(length, head_dim)
        else:
            freqs = torch.cat((freqs, freqs), dim=-1)
        cos, sin = freqs.cos(), freqs.sin()
        q0, k0 = q[:, :1], k[:, :1]
        q = torch.cat([q0 * cos + rotate_half_codec(q0) * sin, q[:, 1:]], dim=1)
        k = torch.cat([k0 * cos + rotate_half_codec(k0) * sin, k[:, 1:]], dim=1)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        return self.to_out[0](out.transpose(1, 2).reshape(batch, length, -1))

    return forward


def check_rope_layout(name, dit):
    inputs = load_file(os.path.join(CHECKPOINTS, name, "dit_inputs.safetensors"))
    golden = load_file(os.path.join(CHECKPOINTS, name, "dit.safetensors"))
    expected = torch.cat([golden["v_cond"], golden["v_uncond"]])
    n = inputs["x"].shape[1]
    diffs = {}
    original = hf.DiTAttention.forward
    for label, interleaved in (("4.57 interleaved", True), ("v5.0 cat (broken)", False)):
        hf.DiTAttention.forward = attention_4_57(interleaved)
        try:
            out = dit(hidden_states=inputs["x"], condition_vector=inputs["ref_mel"],
                      speaker_embedding=inputs["cond"].unsqueeze(1).repeat(1, n, 1),
                      quantized_code=inputs["code"], time_step=inputs["t"], apply_cfg=True)
        finally:
            hf.DiTAttention.forward = original
        diffs[label] = float((out - expected).abs().max())
    print("  RoPE check vs the 5.23 dit golden: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    assert diffs["4.57 interleaved"] < 1e-5, "transformers 5.23 no longer matches the shipped DiT RoPE"
    assert diffs["v5.0 cat (broken)"] > 1e-3, "the RoPE check cannot tell the layouts apart"


def main():
    torch.set_num_threads(1)
    for name, n_codes in CODES.items():
        print(name)
        gen = torch.Generator().manual_seed(sum(map(ord, name + "_stream")))
        dit, voc, hop = load_models(name)
        with torch.no_grad():
            check_rope_layout(name, dit)
            d = dit.config
            code = torch.randint(0, d.num_embeds + 1, (1, n_codes), generator=gen)
            cond = torch.randn(1, d.enc_emb_dim, generator=gen)
            ref_mel = torch.randn(1, 30, 80, generator=gen) - 4.0
            noise = torch.randn(1, 2 * n_codes, 80, generator=gen)
            mel, wav, chunk_samples = stream(dit, voc, hop, code, cond, ref_mel, noise)
            one_shot_mel = sample_window(dit, cond, ref_mel, code, noise).permute(0, 2, 1)
            one_shot = voc(one_shot_mel).reshape(1, -1)
        # Random weights push some samples into the vocoder's final clamp; keep most comparable.
        clipped = float((wav.abs() >= 1.0).float().mean())
        assert clipped < 0.1, f"{name}: {clipped:.0%} of the streamed samples clip"
        # How far streaming is from the one-shot result (windows see less context): the margin by
        # which a test against this golden tells the chunked algorithm from a one-shot run.
        print(f"  wav {tuple(wav.shape)}, {clipped:.1%} clipped; max |stream - one shot|: "
              f"mel {float((mel - one_shot_mel).abs().max()):.3f}, wav {float((wav - one_shot).abs().max()):.4f}")
        cdir = os.path.join(OUT, name)
        os.makedirs(cdir, exist_ok=True)
        meta = {"checkpoint": f"{CHECKPOINTS}/{name}/checkpoint", "chunk_frames": str(CHUNK),
                "past_frames": str(PAST), "future_frames": str(FUTURE), "vocoder_overlap_frames": str(OVERLAP),
                "steps": str(STEPS), "guidance": str(GUIDANCE), "sway": str(SWAY), "solver": "rk4 (3/8 rule)"}
        save_file({"code": code, "cond": cond, "ref_mel": ref_mel, "noise": noise},
                  os.path.join(cdir, "token2wav_stream_inputs.safetensors"), metadata=meta)
        save_file({"wav": wav, "mel": mel, "chunk_samples": torch.tensor(chunk_samples, dtype=torch.long)},
                  os.path.join(cdir, "token2wav_stream.safetensors"), metadata=meta)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total / 1e6:.2f} MB")
    assert total < 500_000, "streaming Token2Wav goldens must stay under 0.5 MB"


if __name__ == "__main__":
    main()
