"""hibari 0.2.1 acoustic model (hibari/assets/hibari.onnx) in plain numpy: the executable spec the Rust
port follows (docs/hibari_port.md). hibari_goldens.py checks it against onnxruntime.

Two numeric modes:
  * quant="dynamic" (default): reproduces the graph exactly as onnxruntime runs it. Every MatMul whose
    weight is int8 first quantizes its activation per tensor to uint8 (DynamicQuantizeLinear: range
    [min(x,0), max(x,0)] over the WHOLE tensor, scale = range/255, zero point = round_half_even(-min/scale),
    q = clamp(round_half_even(x/scale) + zp, 0, 255)), multiplies in int32, then
    y = float32(acc) * (scale_x * scale_w) + bias.
  * quant="float": weights dequantized to float32 (w_int8 * scale_w), activations kept in float32.
    Simpler and "more accurate", but NOT what the package computes (see the goldens for the gap).

Weights: ONNX initializers. Float ones keep their names (m.text.*, pn.*, m.dec*, m.head.bias). The 45
int8 MatMul weights (used by 77 MatMulInteger nodes) have node-path names; `quantized_owners` recovers their owners from the graph (the
Add that consumes the MatMul output adds `<owner>.bias`, or `...in_proj_bias` for `in_proj_weight`).
They are stored transposed relative to PyTorch: shape [in, out], y = x @ W.

    .venv/bin/python tools/reference/hibari_numpy.py export OUT.safetensors   # int8 weights + scales, owner names
"""
import math

import numpy as np

F32 = np.float32
PRO_DILATIONS = (1, 2, 4, 8, 1, 2)            # depthwise dilation of pn.pro.0..5 (all other convs: 1)
_erf = np.frompyfunc(math.erf, 1, 1)


def load_onnx(path):
    """-> (float initializers by name, {owner: (int8 [in,out], scale float32)}, owner table rows)."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    table = quantized_owners(g)
    qw = {}
    for owner, prefix in table:
        q = inits[prefix + "_quantized"]
        zp = inits[prefix + "_zero_point"]
        assert q.dtype == np.int8 and int(zp) == 0, prefix          # symmetric per-tensor int8
        qw[owner] = (q, F32(inits[prefix + "_scale"]))
    floats = {k: v for k, v in inits.items() if v.dtype == np.float32 and not k.startswith("/")}
    return floats, qw, table


def quantized_owners(g):
    """[(owner weight name, initializer prefix)], one row per int8 weight, from the graph structure."""
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    rows = {}
    for n in g.node:
        if n.op_type != "MatMulInteger":
            continue
        prefix = n.input[1][: -len("_quantized")]
        x = n.output[0]
        for op in ("Cast", "Mul", "Add"):                  # MatMulInteger -> Cast -> Mul(scales) -> Add(bias)
            nxt = [c for c in consumers[x] if c.op_type == op]
            assert len(nxt) == 1, (prefix, op)
            x = nxt[0].output[0]
            last = nxt[0]
        bias = next(i for i in last.input if not i.startswith("/"))
        owner = bias.replace("in_proj_bias", "in_proj_weight") if bias.endswith("in_proj_bias") else bias[: -len("bias")] + "weight"
        assert rows.setdefault(prefix, owner) == owner
    return [(owner, prefix) for prefix, owner in rows.items()]


# -- primitives ---------------------------------------------------------------------------------
def dynamic_quantize(x):
    """ONNX DynamicQuantizeLinear as onnxruntime computes it (float32 arithmetic)."""
    lo = F32(min(F32(x.min()), F32(0)))
    hi = F32(max(F32(x.max()), F32(0)))
    scale = F32(1) if hi == lo else F32((hi - lo) / F32(255))
    zp = F32(np.round(np.clip(F32(0) - lo / scale, 0, 255)))        # np.round: half to even
    q = np.round(np.clip(x / scale, F32(0) - zp, F32(255) - zp)) + zp
    return q.astype(np.int32), scale, int(zp)


class Model:
    def __init__(self, path, quant="dynamic"):
        self.f, self.qw, self.owner_table = load_onnx(path)
        self.quant = quant
        self.deq = {k: (q.astype(F32) * s) for k, (q, s) in self.qw.items()}

    # y = x @ W + b for an int8 weight, x [rows, in]
    def linear(self, x, owner, bias):
        if self.quant == "float":
            return (x @ self.deq[owner] + bias).astype(F32)
        q, sw = self.qw[owner]
        qa, sa, zpa = dynamic_quantize(x)
        acc = (qa - zpa).astype(np.int64) @ q.astype(np.int64)
        return (acc.astype(np.int32).astype(F32) * F32(sa * sw) + bias).astype(F32)

    @staticmethod
    def layer_norm(x, w, b, eps=1e-5):
        mu = x.mean(-1, keepdims=True, dtype=F32)
        var = ((x - mu) ** 2).mean(-1, keepdims=True, dtype=F32)
        return ((x - mu) / np.sqrt(var + F32(eps)) * w + b).astype(F32)

    @staticmethod
    def gelu(x):
        """Exact GELU as the graph writes it: (x * (erf(x / 1.4142135) + 1)) * 0.5."""
        e = _erf((x / F32(1.4142135381698608)).astype(np.float64)).astype(F32)
        return ((x * (e + F32(1))) * F32(0.5)).astype(F32)

    @staticmethod
    def conv1d(x, w, b, pad, groups=1, dilation=1):
        """x [Cin, T], w [Cout, Cin/groups, K], zero padding `pad` both sides, stride 1 -> [Cout, T']."""
        cout, cin_g, k = w.shape
        xp = np.pad(x, ((0, 0), (pad, pad)))
        t = xp.shape[1] - dilation * (k - 1)
        if groups == 1:
            cols = np.stack([xp[:, j * dilation: j * dilation + t] for j in range(k)], axis=-1)     # [Cin, T, K]
            y = np.einsum("ctk,ock->ot", cols, w, dtype=F32)
        else:
            assert groups == cout == x.shape[0] and cin_g == 1                  # depthwise
            y = np.zeros((cout, t), F32)
            for j in range(k):
                y += w[:, 0, j: j + 1] * xp[:, j * dilation: j * dilation + t]
        return (y + b[:, None]).astype(F32)

    # -- blocks ---------------------------------------------------------------------------------
    def convnext(self, x, p, k, dilation=1):
        """x [C, T] -> x + gamma * pw2(gelu(pw1(LN(dwconv_k(x))))), LN over channels; the depthwise
        conv keeps the length: padding dilation*(k-1)/2 on both sides."""
        f = self.f
        h = self.conv1d(x, f[p + ".dw.weight"], f[p + ".dw.bias"], dilation * (k // 2), groups=x.shape[0],
                        dilation=dilation).T                                                    # [T, C]
        h = self.layer_norm(h, f[p + ".norm.weight"], f[p + ".norm.bias"])
        h = self.gelu(self.linear(h, p + ".pw1.weight", f[p + ".pw1.bias"]))
        h = self.linear(h, p + ".pw2.weight", f[p + ".pw2.bias"])
        return (x + (f[p + ".gamma"] * h).T).astype(F32)

    def attn_layer(self, x, p, heads=2):
        """Pre-norm transformer layer, x [L, C]: x += MHA(LN1 x); x += FFN(LN2 x). No mask."""
        f = self.f
        L, C = x.shape
        hd = C // heads
        h = self.layer_norm(x, f[p + ".norm1.weight"], f[p + ".norm1.bias"])
        qkv = self.linear(h, p + ".self_attn.in_proj_weight", f[p + ".self_attn.in_proj_bias"])
        q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(L, heads, hd).transpose(1, 0, 2) for i in range(3))
        s = (q @ k.transpose(0, 2, 1)) / F32(math.sqrt(hd))
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)).astype(F32)
        o = (a @ v).transpose(1, 0, 2).reshape(L, C)
        x = x + self.linear(o, p + ".self_attn.out_proj.weight", f[p + ".self_attn.out_proj.bias"])
        h = self.layer_norm(x, f[p + ".norm2.weight"], f[p + ".norm2.bias"])
        h = self.gelu(self.linear(h, p + ".linear1.weight", f[p + ".linear1.bias"]))
        return (x + self.linear(h, p + ".linear2.weight", f[p + ".linear2.bias"])).astype(F32)

    def text_encoder(self, ids, p, repeats):
        """ids [L] -> [C, L]: embedding, 2 ConvNeXt (k5), ONE shared transformer layer applied
        `repeats` times, final LayerNorm."""
        f = self.f
        x = f[p + ".emb.weight"][ids].T                                    # [C, L]
        for i in range(2):
            x = self.convnext(x, f"{p}.convs.{i}", 5)
        x = x.T
        for _ in range(repeats):
            x = self.attn_layer(x, p + ".attn")
        return self.layer_norm(x, f[p + ".norm.weight"], f[p + ".norm.bias"]).T

    # -- whole graph ------------------------------------------------------------------------------
    def __call__(self, ids, speed=1.0, trace=None):
        """ids: phoneme ids incl. the 0 pads -> dict lh, theta, ln, lr, phi [601, F], f0 [F], plus internals."""
        f = self.f
        ids = np.asarray(ids, np.int64)
        tm = self.text_encoder(ids, "m.text", 4)                           # [128, L]
        tp = self.text_encoder(ids, "pn.text", 6)                          # [192, L]
        d = self.gelu(self.conv1d(tp, f["pn.dur.0.weight"], f["pn.dur.0.bias"], 1))
        logd = self.conv1d(d, f["pn.dur.2.weight"], f["pn.dur.2.bias"], 0)[0]                 # [L]
        dur = np.maximum(np.round((np.exp(logd) - F32(1)) / F32(speed)), F32(1)).astype(np.int64)
        ends = np.cumsum(dur)
        idx = (np.arange(ends[-1])[:, None] >= ends[None, :]).sum(1)       # phoneme of each 25 ms frame
        xp = self.conv1d(tp[:, idx], f["pn.pro_in.weight"], f["pn.pro_in.bias"], 0)            # [192, T]
        for i, dil in enumerate(PRO_DILATIONS):
            xp = self.convnext(xp, f"pn.pro.{i}", 7, dil)
        pro = self.conv1d(xp, f["pn.pro_out.weight"], f["pn.pro_out.bias"], 0)                # [4, T]
        T = pro.shape[1]
        pro = pro.reshape(2, 2, T).transpose(0, 2, 1).reshape(2, 2 * T)    # [f0|energy, 12.5 ms frame]
        f0 = (pro[0] * F32(100)).astype(F32)
        en = (pro[1] * F32(5)).astype(F32)
        text = np.repeat(tm[:, idx], 2, axis=1)                            # [128, 2T]
        x = np.concatenate([text, (np.log(F32(1) + np.maximum(f0, 0)) / F32(5))[None], (en / F32(5))[None]])
        x = self.conv1d(x.astype(F32), f["m.dec_in.weight"], f["m.dec_in.bias"], 3)            # [256, F]
        for i in range(8):
            x = self.convnext(x, f"m.dec.{i}", 7)
        h = self.layer_norm(x.T, f["m.dec_norm.weight"], f["m.dec_norm.bias"])
        out = self.linear(h, "m.head.weight", f["m.head.bias"]).T                              # [3005, F]
        res = {k: out[i * 601:(i + 1) * 601] for i, k in enumerate(("lh", "theta", "ln", "lr", "phi"))}
        res.update(f0=f0, logd=logd, dur=dur, energy=en)
        return res


class OOVNet:
    """hibari/assets/oov.onnx (float32, 0.65M params): character transformer for unknown words.
    chars [L] (ids 1.. from oov.json "in", L <= 24) -> emb + pos[:L] -> 4 pre-norm layers (d 128, 4 heads
    of 32, FFN 384 exact GELU, no mask) -> LayerNorm -> head [128 -> 216] -> [4L, 54] -> argmax per slot
    (first max wins) -> CTC collapse: drop repeats of the previous slot, then drop 0 (blank);
    id i >= 1 is oov.json "out"[i - 1]. The head weights are unnamed (onnx::MatMul_*); in graph order
    they are, per layer: in_proj [128,384], out_proj [128,128], linear1 [128,384], linear2 [384,128],
    then head [128,216]; all stored [in, out]."""

    def __init__(self, path):
        import onnx
        from onnx import numpy_helper
        g = onnx.load(path).graph
        self.w = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        mats = [n.input[1] for n in g.node if n.op_type == "MatMul" and n.input[1].startswith("onnx::")]
        names = [f"m.layers.{i}.{k}" for i in range(4) for k in ("in_proj", "out_proj", "linear1", "linear2")] + ["m.head"]
        assert len(mats) == len(names)
        self.mat = dict(zip(names, (self.w[m] for m in mats)))

    def __call__(self, chars):
        w, m = self.w, self.mat
        L = len(chars)
        x = (w["m.emb.weight"][np.asarray(chars)] + w["m.pos"][:L]).astype(F32)
        for i in range(4):
            p = f"m.layers.{i}"
            h = Model.layer_norm(x, w[p + ".norm1.weight"], w[p + ".norm1.bias"])
            qkv = h @ m[p + ".in_proj"] + w[p + ".self_attn.in_proj_bias"]
            q, k, v = (qkv[:, j * 128:(j + 1) * 128].reshape(L, 4, 32).transpose(1, 0, 2) for j in range(3))
            s = (q @ k.transpose(0, 2, 1)) / F32(math.sqrt(32))
            s = np.exp(s - s.max(-1, keepdims=True))
            o = ((s / s.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(L, 128)
            x = x + o @ m[p + ".out_proj"] + w[p + ".self_attn.out_proj.bias"]
            h = Model.layer_norm(x, w[p + ".norm2.weight"], w[p + ".norm2.bias"])
            h = Model.gelu((h @ m[p + ".linear1"] + w[p + ".linear1.bias"]).astype(F32))
            x = (x + h @ m[p + ".linear2"] + w[p + ".linear2.bias"]).astype(F32)
        x = Model.layer_norm(x, w["m.norm.weight"], w["m.norm.bias"])
        return np.argmax((x @ m["m.head"] + w["m.head.bias"]).reshape(-1, 54), axis=-1)


def default_path():
    import importlib.util
    import os
    return os.path.join(os.path.dirname(importlib.util.find_spec("hibari").origin), "assets", "hibari.onnx")


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != "export":
        sys.exit("usage: hibari_numpy.py export OUT.safetensors")
    from safetensors.numpy import save_file
    floats, qw, _ = load_onnx(default_path())
    tensors = dict(floats)
    for owner, (q, s) in qw.items():
        tensors[owner + ".int8"] = q
        tensors[owner + ".scale"] = np.array([s], F32)
    save_file(tensors, sys.argv[2])
