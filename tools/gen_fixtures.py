#!/usr/bin/python3
"""gen_fixtures: writes the PyTorch golden fixtures tests/fixtures/*.bin.

A plain-PyTorch copy of our model math (src/cpu/model.h), written here from the
formulas rather than from any library model class, for four tiny models:

  golden_mha     MHA Llama, interleaved RoPE, tied classifier
  golden_gqa     GQA Llama (NH 4, NKV 2), interleaved RoPE, tied
  golden_qwen3   Qwen3-like: GQA, QK-norm, rotate-half RoPE theta 1e6, eps 1e-6,
                 head_dim*heads != dim, tied
  golden_untied  separate classifier, GQA ratio 4 (NH 8, NKV 2),
                 res_scale 1/sqrt(2L), rotate-half RoPE without QK-norm

Each file holds the config, one batch (tokens, targets), every parameter under
our names and shapes, the logits, the loss, the gradient of the loss w.r.t.
every parameter ("grad.<name>") and the losses of 5 AdamW steps on the same
batch ("adamw_losses"). The container is documented in tests/fixture.h.

LoRA (golden_lora_gqa, golden_lora_qwen3: the same models and batches): rank-4
adapters with alpha 8 on all seven matrices, written here by hand as
y = x Wᵀ + (alpha/r) (x Aᵀ) Bᵀ (the residual scale outside, as on W itself),
A ~ N(0, 1/r²) and B = 0 (PEFT's gaussian init); the base frozen. Stored: the
adapters' initial values ("lora.A.<t>" [L, r, in], "lora.B.<t>" [L, out, r]),
the loss and the adapters' gradients with B made non-zero ("lora.B1.<t>", then
"lora.grad.A.<t>", "lora.grad.B.<t>"), and the losses of 5 AdamW steps of the
adapters from their fresh init (weight decay 0.1 on A and B, "lora_adamw_losses").

Precision: weights are drawn in fp32 (they are stored as fp32 and are exactly
what the C side uses); the stored references are then computed in float64
from those same values, so they are the exact answer up to fp64 rounding and
any disagreement the C tests see is the C side's own fp32 error. The summary
also prints how far an fp32 run of this same script is from the fp64 one: that
is the noise level to expect from any correct fp32 implementation.

Run: /usr/bin/python3 tools/gen_fixtures.py [--out tests/fixtures]
Deterministic (torch.manual_seed per model, single thread); a few seconds.
"""
import argparse
import math
import os
import struct
import sys

import torch

MAGIC = b"ANEFIXT\0"
VERSION = 1
DT_F32, DT_I32 = 0, 1
ROPE_INTERLEAVED, ROPE_HALF = 0, 1
N_ADAMW_STEPS = 5

# name: config, seed. S == seq_len for every fixture.
MODELS = [
    ("golden_mha", dict(dim=32, hidden=80, n_layers=2, n_heads=4, n_kv_heads=4, head_dim=8, vocab=64,
                        seq_len=16, norm_eps=1e-5, rope_theta=1e4, rope_layout=ROPE_INTERLEAVED,
                        qk_norm=0, tied=1, res_scale=1.0), 1001),
    ("golden_gqa", dict(dim=32, hidden=80, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, vocab=64,
                        seq_len=16, norm_eps=1e-5, rope_theta=1e4, rope_layout=ROPE_INTERLEAVED,
                        qk_norm=0, tied=1, res_scale=1.0), 1002),
    ("golden_qwen3", dict(dim=32, hidden=80, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, vocab=64,
                          seq_len=16, norm_eps=1e-6, rope_theta=1e6, rope_layout=ROPE_HALF,
                          qk_norm=1, tied=1, res_scale=1.0), 1003),
    ("golden_untied", dict(dim=32, hidden=80, n_layers=2, n_heads=8, n_kv_heads=2, head_dim=4, vocab=64,
                           seq_len=16, norm_eps=1e-5, rope_theta=1e4, rope_layout=ROPE_HALF,
                           qk_norm=0, tied=0, res_scale=1.0 / math.sqrt(2 * 2)), 1004),
]

# Config fields in the order of src/model/config.h, with their stored dtype.
CONFIG_FIELDS = [("dim", DT_I32), ("hidden", DT_I32), ("n_layers", DT_I32), ("n_heads", DT_I32),
                 ("n_kv_heads", DT_I32), ("head_dim", DT_I32), ("vocab", DT_I32), ("seq_len", DT_I32),
                 ("norm_eps", DT_F32), ("rope_theta", DT_F32), ("rope_layout", DT_I32), ("qk_norm", DT_I32),
                 ("tied", DT_I32), ("res_scale", DT_F32)]


def param_specs(c):
    """Our tensors in params_layout order: (name, shape, is_norm). Per-layer
    tensors are [L, rows, cols] (rows 1 for norm vectors), like TensorDesc."""
    D, H, L, V, HD = c["dim"], c["hidden"], c["n_layers"], c["vocab"], c["head_dim"]
    QD, KVD = c["n_heads"] * HD, c["n_kv_heads"] * HD
    specs = [("embed", (V, D), 0), ("rms_att", (L, 1, D), 1), ("wq", (L, QD, D), 0), ("wk", (L, KVD, D), 0),
             ("wv", (L, KVD, D), 0), ("wo", (L, D, QD), 0)]
    if c["qk_norm"]:
        specs += [("q_norm", (L, 1, HD), 1), ("k_norm", (L, 1, HD), 1)]
    specs += [("rms_ffn", (L, 1, D), 1), ("w1", (L, H, D), 0), ("w2", (L, D, H), 0), ("w3", (L, H, D), 0),
              ("rms_final", (D,), 1)]
    if not c["tied"]:
        specs.append(("wcls", (V, D), 0))
    return specs


def init_params(c, gen):
    """fp32 weights: matrices ~ N(0, 0.1), norm weights 1 + 0.1 N(0, 1)."""
    out = {}
    for name, shape, is_norm in param_specs(c):
        w = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.1
        out[name] = w + 1.0 if is_norm else w
    return out


# --- the model (row-per-position layout [S, C]; ours is [C, S], same math) ----------

def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta, layout):
    """x: [nh, S, hd]. angle(t, i) = t * theta^(-2i/hd), i < hd/2."""
    nh, S, hd = x.shape
    i = torch.arange(hd // 2, dtype=x.dtype)
    inv = torch.tensor(theta, dtype=x.dtype).pow(-2.0 * i / hd)
    ang = torch.arange(S, dtype=x.dtype)[:, None] * inv[None, :]  # [S, hd/2]
    cos, sin = torch.cos(ang), torch.sin(ang)
    if layout == ROPE_INTERLEAVED:  # llama2.c: pairs (2i, 2i+1)
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).reshape(nh, S, hd)
    a, b = x[..., : hd // 2], x[..., hd // 2:]  # HF rotate_half: pairs (i, i + hd/2)
    return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)


LORA_TARGETS = [("q", "wq"), ("k", "wk"), ("v", "wv"), ("o", "wo"), ("w1", "w1"), ("w2", "w2"), ("w3", "w3")]
LORA_RANK, LORA_ALPHA = 4, 8.0


def forward(c, P, tokens, targets, lora=None):
    """Returns (logits [S, V], mean cross-entropy). lora: {"A": {t: [L, r, in]},
    "B": {t: [L, out, r]}} adds (alpha/r) (x Aᵀ) Bᵀ to every target's product."""
    D, NH, NKV, HD, eps = c["dim"], c["n_heads"], c["n_kv_heads"], c["head_dim"], c["norm_eps"]
    S, alpha = tokens.shape[0], c["res_scale"]
    x = P["embed"][tokens]  # [S, D]
    causal = torch.ones(S, S, dtype=torch.bool).tril()

    def lin(inp, w, t, l):
        y = inp @ P[w][l].T
        if lora is not None:
            y = y + (LORA_ALPHA / LORA_RANK) * ((inp @ lora["A"][t][l].T) @ lora["B"][t][l].T)
        return y

    for l in range(c["n_layers"]):
        xn = rmsnorm(x, P["rms_att"][l, 0], eps)
        q = lin(xn, "wq", "q", l).view(S, NH, HD).transpose(0, 1)  # [NH, S, HD]
        k = lin(xn, "wk", "k", l).view(S, NKV, HD).transpose(0, 1)  # [NKV, S, HD]
        v = lin(xn, "wv", "v", l).view(S, NKV, HD).transpose(0, 1)
        if c["qk_norm"]:  # RMSNorm over each head's HD channels, before RoPE
            q = rmsnorm(q, P["q_norm"][l, 0], eps)
            k = rmsnorm(k, P["k_norm"][l, 0], eps)
        q = rope(q, c["rope_theta"], c["rope_layout"])
        k = rope(k, c["rope_theta"], c["rope_layout"])
        # GQA as HF repeat_kv: query head h reads kv head h // (NH/NKV)
        k = k.repeat_interleave(NH // NKV, dim=0)
        v = v.repeat_interleave(NH // NKV, dim=0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(HD)  # [NH, S, S]
        scores = scores.masked_fill(~causal, float("-inf"))
        att = (torch.softmax(scores, dim=-1) @ v).transpose(0, 1).reshape(S, NH * HD)
        x2 = x + alpha * lin(att, "wo", "o", l)
        x2n = rmsnorm(x2, P["rms_ffn"][l, 0], eps)
        h = torch.nn.functional.silu(lin(x2n, "w1", "w1", l)) * lin(x2n, "w3", "w3", l)
        x = x2 + alpha * lin(h, "w2", "w2", l)
    xf = rmsnorm(x, P["rms_final"], eps)
    logits = xf @ (P["embed"] if c["tied"] else P["wcls"]).T
    return logits, torch.nn.functional.cross_entropy(logits, targets)


def run(c, weights, tokens, targets, dtype):
    """Forward + backward + N AdamW steps in `dtype` from the fp32 weights."""
    P = {n: w.to(dtype).clone().requires_grad_(True) for n, w in weights.items()}
    logits, loss = forward(c, P, tokens, targets)
    loss.backward()
    res = {"logits": logits.detach(), "loss": loss.detach(), "grads": {n: p.grad.clone() for n, p in P.items()}}
    # AdamW on the same batch: decay on matrices and the embedding, none on norms, no clipping
    norm_names = {n for n, _, is_norm in param_specs(c) if is_norm}
    opt = torch.optim.AdamW([
        {"params": [P[n] for n in P if n not in norm_names], "weight_decay": 0.1},
        {"params": [P[n] for n in P if n in norm_names], "weight_decay": 0.0},
    ], lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    losses = []
    for _ in range(N_ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        _, l = forward(c, P, tokens, targets)
        losses.append(l.item())  # loss before this update
        l.backward()
        opt.step()
    res["adamw_losses"] = torch.tensor(losses, dtype=torch.float64)
    return res


def lora_init(c, weights, gen):
    """A ~ N(0, 1/r^2) [L, r, in], B = 0 [L, out, r], per target."""
    A, B = {}, {}
    for t, w in LORA_TARGETS:
        L, out, inp = weights[w].shape
        A[t] = torch.randn((L, LORA_RANK, inp), generator=gen, dtype=torch.float32) / LORA_RANK
        B[t] = torch.zeros((L, out, LORA_RANK), dtype=torch.float32)
    return A, B


def run_lora(c, weights, A0, B1, tokens, targets, dtype):
    """The adapters' gradients at (A0, B1), and 5 AdamW steps from (A0, B = 0)."""
    P = {n: w.to(dtype) for n, w in weights.items()}  # frozen
    lo = {"A": {t: a.to(dtype).clone().requires_grad_(True) for t, a in A0.items()},
          "B": {t: b.to(dtype).clone().requires_grad_(True) for t, b in B1.items()}}
    _, loss = forward(c, P, tokens, targets, lo)
    loss.backward()
    res = {"loss": loss.detach(), "gA": {t: a.grad.clone() for t, a in lo["A"].items()},
           "gB": {t: b.grad.clone() for t, b in lo["B"].items()}}
    lo = {"A": {t: a.to(dtype).clone().requires_grad_(True) for t, a in A0.items()},
          "B": {t: torch.zeros_like(b, dtype=dtype).requires_grad_(True) for t, b in B1.items()}}
    opt = torch.optim.AdamW(list(lo["A"].values()) + list(lo["B"].values()), lr=1e-2, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.1)
    losses = []
    for _ in range(N_ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        _, l = forward(c, P, tokens, targets, lo)
        losses.append(l.item())
        l.backward()
        opt.step()
    res["adamw_losses"] = torch.tensor(losses, dtype=torch.float64)
    return res


def lora_fixture(name, c, weights, gen, tokens, targets, out_dir):
    A0, B0 = lora_init(c, weights, gen)
    B1 = {t: torch.randn(b.shape, generator=gen, dtype=torch.float32) * 0.1 for t, b in B0.items()}
    ref = run_lora(c, weights, A0, B1, tokens, targets, torch.float64)
    recs = [pack_tensor("config." + f, torch.tensor(c[f]), dt) for f, dt in CONFIG_FIELDS]
    recs += [pack_tensor("S", torch.tensor(c["seq_len"]), DT_I32),
             pack_tensor("tokens", tokens, DT_I32), pack_tensor("targets", targets, DT_I32)]
    recs += [pack_tensor(n, weights[n], DT_F32) for n, _, _ in param_specs(c)]
    recs += [pack_tensor("lora.rank", torch.tensor(LORA_RANK), DT_I32),
             pack_tensor("lora.alpha", torch.tensor(LORA_ALPHA), DT_F32)]
    for t, _ in LORA_TARGETS:
        recs += [pack_tensor("lora.A." + t, A0[t], DT_F32), pack_tensor("lora.B1." + t, B1[t], DT_F32),
                 pack_tensor("lora.grad.A." + t, ref["gA"][t], DT_F32),
                 pack_tensor("lora.grad.B." + t, ref["gB"][t], DT_F32)]
    recs += [pack_tensor("lora.loss", ref["loss"], DT_F32),
             pack_tensor("lora_adamw_losses", ref["adamw_losses"], DT_F32)]
    size = write_fixture(os.path.join(out_dir, name + ".bin"), recs)
    print("%-17s %6.1f KB  rank %d  loss %.6f  adamw %s" % (
        name, size / 1024, LORA_RANK, ref["loss"].item(), " ".join("%.5f" % x for x in ref["adamw_losses"].tolist())))
    return size


# --- container -----------------------------------------------------------------------

def pack_tensor(name, t, dtype):
    """One record: name_len u32, name padded with NULs to 4 bytes, dtype u32,
    ndim u32, dims u32[ndim], data (little-endian)."""
    nb = name.encode("ascii")
    assert 0 < len(nb) < 64, name
    t = t.detach().contiguous()
    t = t.to(torch.float32 if dtype == DT_F32 else torch.int32)
    head = struct.pack("<I", len(nb)) + nb + b"\0" * (-len(nb) % 4)
    head += struct.pack("<II", dtype, t.dim()) + struct.pack("<%dI" % t.dim(), *t.shape)
    data = t.numpy().astype("<f4" if dtype == DT_F32 else "<i4").tobytes()
    return head + data


def write_fixture(path, records):
    blob = MAGIC + struct.pack("<II", VERSION, len(records)) + b"".join(records)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(blob)


def rel_err(a, b):
    return (a.double() - b.double()).abs().max().item() / max(b.double().abs().max().item(), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                   "fixtures"))
    args = ap.parse_args()
    torch.set_num_threads(1)  # determinism of the fp32 comparison run, and share the machine
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, c, seed in MODELS:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        weights = init_params(c, gen)
        S = c["seq_len"]
        seq = torch.randint(0, c["vocab"], (S + 1,), generator=gen)
        tokens, targets = seq[:-1].clone(), seq[1:].clone()
        ref = run(c, weights, tokens, targets, torch.float64)
        f32 = run(c, weights, tokens, targets, torch.float32)

        recs = [pack_tensor("config." + f, torch.tensor(c[f]), dt) for f, dt in CONFIG_FIELDS]
        recs += [pack_tensor("S", torch.tensor(S), DT_I32),
                 pack_tensor("tokens", tokens, DT_I32), pack_tensor("targets", targets, DT_I32)]
        recs += [pack_tensor(n, weights[n], DT_F32) for n, _, _ in param_specs(c)]
        recs += [pack_tensor("logits", ref["logits"], DT_F32), pack_tensor("loss", ref["loss"], DT_F32)]
        recs += [pack_tensor("grad." + n, ref["grads"][n], DT_F32) for n, _, _ in param_specs(c)]
        recs.append(pack_tensor("adamw_losses", ref["adamw_losses"], DT_F32))
        size = write_fixture(os.path.join(args.out, name + ".bin"), recs)
        total += size

        noise = max([rel_err(f32["logits"], ref["logits"])] +
                    [rel_err(f32["grads"][n], ref["grads"][n]) for n in ref["grads"]])
        nparam = sum(w.numel() for w in weights.values())
        print("%-14s %6.1f KB  params %6d  loss %.6f  adamw %s" % (
            name, size / 1024, nparam, ref["loss"].item(),
            " ".join("%.5f" % x for x in ref["adamw_losses"].tolist())))
        print("%-14s fp32 run vs fp64 reference: worst tensor rel err %.2e, loss diff %.2e, adamw diff %.2e" % (
            "", noise, abs(f32["loss"].item() - ref["loss"].item()),
            (f32["adamw_losses"] - ref["adamw_losses"]).abs().max().item()))
        if name in ("golden_gqa", "golden_qwen3"):  # after the model's draws, so its fixture is unchanged
            total += lora_fixture(name.replace("golden_", "golden_lora_"), c, weights, gen, tokens, targets, args.out)
    print("wrote %d fixtures to %s (%.1f KB total)" % (len(MODELS) + 2, os.path.normpath(args.out), total / 1024))


if __name__ == "__main__":
    sys.exit(main())
