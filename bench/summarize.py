#!/usr/bin/python3
"""Summaries for bench/run.sh (standard library only).

  summarize.py MODEL PEAK.json RUNS.jsonl PEAK_TABLE.txt
      one model's A/B/C rounds: medians, ranges, ratios per round, % of peak, targets
  summarize.py --curve FP32.jsonl BF16.jsonl BOUND MODEL
      the bf16 loss curve against the fp32 one
"""
import json
import statistics
import sys

# The acceptance targets of the CPU-speed issue, per (model, precision):
# max ratio of ms/step to PyTorch fp32, min % of the measured sgemm peak, max peak RSS (GiB).
TARGETS = {
    ("stories110m", "fp32"): {"ratio": 0.70, "peak_pct": 80.0, "rss_gib": 2.0},
    ("stories15m", "fp32"): {"ratio": 0.55},
    ("stories110m", "bf16"): {"ratio": 0.45},
    ("qwen3-0.6b", "fp32"): {"ratio": 0.45, "first": 1.3},
    ("qwen3-0.6b", "fp32-recompute"): {"ratio": 0.45, "rss_gib": 9.0, "first": 1.3},
}


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


def group(runs, impl, prec=None):
    return [r for r in runs if r["impl"] == impl and (prec is None or r.get("precision") == prec)]


def describe(name, rs):
    med = statistics.median(r["median_ms"] for r in rs)
    lo = min(r["min_ms"] for r in rs)
    hi = max(r["max_ms"] for r in rs)
    rss = max(r["peak_rss_mb"] for r in rs)
    seq = rs[0]["seq"]
    print(f"  {name:16s} {med:9.1f} ms/step  (min-max {lo:.1f}-{hi:.1f}, {len(rs)} processes)  "
          f"{seq / (med / 1e3):7.1f} tok/s  peak RSS {rss:7.1f} MiB ({rss / 1024:.2f} GiB)")
    return med, rss


def model_summary(model, peak_path, runs_path, table_path):
    peak = load(peak_path)[0]
    runs = load(runs_path)
    print(f"\n=== {model}: seq {runs[0]['seq']}, {peak['threads']} threads, gemm {peak['gemm']} ===")
    print(f"sgemm peak on {model}'s GEMM shapes (bench/gemm_peak, best of split / BLAS threads / side-by-side):")
    with open(table_path) as f:
        for line in f:
            print("    " + line.rstrip())
    torch = group(runs, "pytorch")
    t_med = None
    if torch:
        t_med, _ = describe("pytorch fp32", torch)
    for prec in ("fp32", "bf16", "fp32-recompute"):
        rs = group(runs, "anetrain", prec)
        if not rs:
            continue
        med, rss = describe(f"anetrain {prec}", rs)
        flops = rs[0]["gflops"] * rs[0]["median_ms"] * 1e6  # per window (metrics_flops_per_window)
        gflops = flops / (med * 1e6)
        pct = 100.0 * gflops / peak["peak_gflops"]
        print(f"      achieved {gflops:.1f} GFLOPS = {pct:.1f}% of the measured peak {peak['peak_gflops']:.1f} "
              f"(FLOPs/step {flops / 1e9:.1f} G: 6*N*tokens + attention, metrics_flops_per_window)")
        keys = ["zero_ms", "fwd_ms", "bwd_ms", "optim_ms", "fwd_gemm", "fwd_attn", "fwd_cls", "fwd_other",
                "bwd_gemm", "bwd_attn", "bwd_cls", "bwd_other"]
        ph = {k: statistics.mean(r[k] for r in rs) for k in keys}
        print("      phases (ms, mean): zero %.1f | forward %.1f = gemm %.1f + attn %.1f + cls %.1f + other %.1f"
              " | backward %.1f = gemm %.1f + attn %.1f + cls %.1f + other %.1f | optimizer %.1f" % (
                  ph["zero_ms"], ph["fwd_ms"], ph["fwd_gemm"], ph["fwd_attn"], ph["fwd_cls"], ph["fwd_other"],
                  ph["bwd_ms"], ph["bwd_gemm"], ph["bwd_attn"], ph["bwd_cls"], ph["bwd_other"], ph["optim_ms"]))
        ratio = None
        if torch:
            pairs = []
            for r in rs:
                mate = [t for t in torch if t["round"] == r["round"]]
                if mate:
                    pairs.append(r["median_ms"] / mate[0]["median_ms"])
            ratio = med / t_med
            print(f"      anetrain/pytorch: {ratio:.3f} (medians); per round: " +
                  " ".join(f"{p:.3f}" for p in pairs))
        tgt = TARGETS.get((model, prec))
        if tgt:
            verdicts = []
            if "ratio" in tgt and ratio is not None:
                verdicts.append(f"ratio {ratio:.3f} <= {tgt['ratio']}: {'MET' if ratio <= tgt['ratio'] else 'NOT MET'}")
            if "peak_pct" in tgt:
                verdicts.append(f"{pct:.1f}% >= {tgt['peak_pct']}% of peak: "
                                f"{'MET' if pct >= tgt['peak_pct'] else 'NOT MET'}")
            if "first" in tgt:
                first = statistics.median(r["first_ms"] for r in rs)
                verdicts.append(f"first update {first / med:.2f}x a later one <= {tgt['first']}: "
                                f"{'MET' if first / med <= tgt['first'] else 'NOT MET'}")
            if "rss_gib" in tgt:
                verdicts.append(f"RSS {rss / 1024:.2f} <= {tgt['rss_gib']} GiB: "
                                f"{'MET' if rss / 1024 <= tgt['rss_gib'] else 'NOT MET'}")
            print("      target: " + "; ".join(verdicts))


def curve(fp32_path, bf16_path, bound, model):
    def evals(path):
        return {r["step"]: r["val_loss"] for r in load(path) if r.get("type") == "eval"}

    def steps(path):
        return {r["step"]: r["loss"] for r in load(path) if r.get("type") == "step"}

    a, b = evals(fp32_path), evals(bf16_path)
    common = sorted(set(a) & set(b))
    diffs = [abs(a[s] - b[s]) for s in common]
    worst = max(diffs)
    at = common[diffs.index(worst)]
    ta, tb = steps(fp32_path), steps(bf16_path)
    print(f"\n=== loss curve: {model}, TinyStories (2 MiB head, Llama 2 tokenizer), {max(ta)} updates of 1 window;"
          f" validation loss on 40 fixed windows of the validation head ===")
    print("  step     " + " ".join(f"{s:>7d}" for s in common))
    print("  fp32 val " + " ".join(f"{a[s]:7.3f}" for s in common))
    print("  bf16 val " + " ".join(f"{b[s]:7.3f}" for s in common))
    ok = worst <= bound
    td = [abs(ta[s] - tb[s]) for s in sorted(set(ta) & set(tb))]
    print(f"  training-window losses (one window each, noisy): mean |bf16 - fp32| {statistics.mean(td):.4f},"
          f" max {max(td):.4f}")
    print(f"  validation |bf16 - fp32|: max {worst:.4f} (step {at}), mean {statistics.mean(diffs):.4f}; "
          f"bound {bound}: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    if sys.argv[1] == "--curve":
        curve(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    else:
        model_summary(*sys.argv[1:5])
