#!/usr/bin/python3
"""PyTorch peer for `make bench`: the same model (Llama block, tied classifier, the
same AdamW recipe) trained on one window of random tokens, timed per step
(forward + backward + AdamW), printed as one JSON line like bench_train.

usage: peer_torch.py MODEL SEQ WARMUP STEPS THREADS [LORA_RANK]

With LORA_RANK > 0 every weight is frozen and rank-r adapters on the seven
matrices of each block are trained instead, written here by hand (as PEFT
computes them): y = W x + (alpha/r) B (A x), alpha = r, A ~ N(0, 1/r^2), B = 0.
"""
import json, math, resource, statistics, sys, time

import torch
import torch.nn.functional as F

PRESETS = {  # dim, hidden, layers, heads, kv_heads, head_dim, vocab
    "qwen3-0.6b": (1024, 3072, 28, 16, 8, 128, 151936),  # QK-norm, rotate-half RoPE theta 1e6, eps 1e-6
    "stories15m": (288, 768, 6, 6, 6, 48, 32000),
    "stories42m": (512, 1376, 8, 8, 8, 64, 32000),
    "stories110m": (768, 2048, 12, 12, 12, 64, 32000),
    "stories260k": (64, 172, 5, 8, 4, 8, 512),
}


QWEN = {"qwen3-0.6b"}


class Block(torch.nn.Module):
    def __init__(s, D, H, NH, NKV, HD, qwen=False):
        super().__init__()
        s.NH, s.NKV, s.HD, s.qwen = NH, NKV, HD, qwen
        s.eps = 1e-6 if qwen else 1e-5
        if qwen:  # Qwen3's QK-norm: RMSNorm over each head's channels, before RoPE
            s.qn = torch.nn.Parameter(torch.ones(HD))
            s.kn = torch.nn.Parameter(torch.ones(HD))
        s.wq = torch.nn.Linear(D, NH * HD, bias=False)
        s.wk = torch.nn.Linear(D, NKV * HD, bias=False)
        s.wv = torch.nn.Linear(D, NKV * HD, bias=False)
        s.wo = torch.nn.Linear(NH * HD, D, bias=False)
        s.w1 = torch.nn.Linear(D, H, bias=False)
        s.w2 = torch.nn.Linear(H, D, bias=False)
        s.w3 = torch.nn.Linear(D, H, bias=False)
        s.n1 = torch.nn.Parameter(torch.ones(D))
        s.n2 = torch.nn.Parameter(torch.ones(D))

    def forward(s, x, cos, sin, mask):
        T = x.shape[0]
        h = rms(x, s.n1, s.eps)
        q = s.wq(h).view(T, s.NH, s.HD).transpose(0, 1)
        k = s.wk(h).view(T, s.NKV, s.HD).transpose(0, 1)
        v = s.wv(h).view(T, s.NKV, s.HD).transpose(0, 1)
        if s.qwen:
            q, k = rms(q, s.qn, s.eps), rms(k, s.kn, s.eps)
            q, k = rope_half(q, cos, sin), rope_half(k, cos, sin)
        else:
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        R = s.NH // s.NKV
        if R > 1:
            k = k.repeat_interleave(R, 0)
            v = v.repeat_interleave(R, 0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(s.HD) + mask
        a = (att.softmax(-1) @ v).transpose(0, 1).reshape(T, -1)
        x = x + s.wo(a)
        h = rms(x, s.n2, s.eps)
        return x + s.w2(F.silu(s.w1(h)) * s.w3(h))


def rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):  # interleaved pairs, as llama2.c
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1).flatten(-2)


def rope_half(x, cos, sin):  # Hugging Face rotate_half: pairs (i, i + hd/2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1)


class Model(torch.nn.Module):
    def __init__(s, D, H, L, NH, NKV, HD, V, T, qwen=False):
        super().__init__()
        s.emb = torch.nn.Embedding(V, D)
        s.blocks = torch.nn.ModuleList([Block(D, H, NH, NKV, HD, qwen) for _ in range(L)])
        s.norm = torch.nn.Parameter(torch.ones(D))
        s.eps = 1e-6 if qwen else 1e-5
        theta = 1e6 if qwen else 10000.0
        f = 1.0 / (theta ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.outer(torch.arange(T).float(), f)
        s.register_buffer("cos", ang.cos())
        s.register_buffer("sin", ang.sin())
        s.register_buffer("mask", torch.full((T, T), float("-inf")).triu(1))

    def forward(s, tok, tgt):
        x = s.emb(tok)
        for b in s.blocks:
            x = b(x, s.cos, s.sin, s.mask)
        logits = rms(x, s.norm, s.eps) @ s.emb.weight.t()  # tied classifier
        return F.cross_entropy(logits, tgt)


class LoRALinear(torch.nn.Module):
    def __init__(s, base, r):
        super().__init__()
        s.base, s.scale = base, 1.0  # alpha = r
        s.A = torch.nn.Parameter(torch.randn(r, base.in_features) / r)
        s.B = torch.nn.Parameter(torch.zeros(base.out_features, r))

    def forward(s, x):
        return s.base(x) + s.scale * ((x @ s.A.t()) @ s.B.t())


def add_lora(m, r):
    for p in m.parameters():
        p.requires_grad_(False)
    for b in m.blocks:
        for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            setattr(b, name, LoRALinear(getattr(b, name), r))


def main():
    model, T, warm, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    lora = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    D, H, L, NH, NKV, HD, V = PRESETS[model]
    m = Model(D, H, L, NH, NKV, HD, V, T, model in QWEN)
    if lora:
        add_lora(m, lora)
    trained = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.dim() >= 2]
    nodecay = [p for n, p in trained if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    tok = torch.randint(0, V, (T,))
    tgt = torch.randint(0, V, (T,))
    times = []
    for i in range(warm + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = m(tok, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in trained], 1.0)
        opt.step()
        dt = (time.perf_counter() - t0) * 1e3
        if i >= warm:
            times.append(dt)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "pytorch" + (" lora %d" % lora if lora else ""), "model": model, "seq": T, "median_ms": round(med, 2),
                      "min_ms": round(min(times), 2), "max_ms": round(max(times), 2),
                      "tokens_per_s": round(T / (med / 1e3), 1), "peak_rss_mb": round(rss, 1),
                      "torch": torch.__version__, "threads": threads}))


if __name__ == "__main__":
    main()
