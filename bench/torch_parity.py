"""PyTorch reference for bench/parity.ts: trains the execwm GPT on the exact rows, batch order and
initial weights the tfjs trainer used (the dump parity.ts writes) and logs the same losses.

    /usr/bin/python3 bench/torch_parity.py <dump folder> --out <dump folder>/torch.json

Written from the definitions, not from the tfjs code paths, so the two can disagree:
- model (training/model.ts, bench/torch_ref.py): token + per-token position embeddings, pre-LN
  blocks (LayerNorm eps 1e-5), causal attention restricted to the token's own document
  (block-diagonal mask from `documents`), GELU tanh MLP, final LayerNorm, tied head x · wteᵀ;
  linear weights kept [in, out] as dumped.
- batches (training/data.ts makeBatch): inputs are a row's first T tokens, targets the next
  token, label -1 where the target's kind is none; a target counts for the state loss when its
  kind is state and for the next-token loss otherwise (code, action and output tokens).
- objective (training/objective.ts): mean CE over next targets + λ · mean CE over state targets,
  each mean over its own tokens (and λ = 0 leaves the state term out).
- optimizer (training/optim.ts, training/config.ts): torch.optim.AdamW with weight decay only on
  rank ≥ 2 weights, global-norm clipping, linear warm-up then cosine decay to lr · minLrRatio.
- validation (training/train.ts validate): the first `valRows` val rows, token-weighted means.

Runs on one thread (Debian's python3-torch installs for /usr/bin/python3).
"""
import argparse
import json
import math
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as err:
    sys.exit(
        f"torch_parity: {err.name} is not installed for {sys.executable}; install Debian's "
        "python3-torch (apt-get update && apt-get install -y python3-torch libopenblas0-pthread) "
        "and run this with /usr/bin/python3"
    )


def load(dump, header):
    """Rows as numpy arrays [count, rowLength], batches [steps, B], weights by name."""
    def rows(split):
        spec = header["rows"][split]
        shape = (spec["count"], spec["rowLength"])
        read = lambda key, dtype: np.fromfile(os.path.join(dump, spec["files"][key]), dtype=dtype).reshape(shape)
        return {"ids": read("ids", "<i4"), "kinds": read("kinds", "<u1"),
                "documents": read("documents", "<u2"), "positions": read("positions", "<u2")}

    b = header["batches"]
    batches = np.fromfile(os.path.join(dump, b["file"]), dtype="<i4").reshape(b["steps"], b["batchSize"])
    flat = np.fromfile(os.path.join(dump, header["weights"]["file"]), dtype="<f4")
    weights = {}
    for t in header["weights"]["tensors"]:
        size = int(np.prod(t["shape"]))
        weights[t["name"]] = torch.from_numpy(flat[t["offset"]:t["offset"] + size].reshape(t["shape"]).copy())
    return rows("train"), rows("val"), batches, weights


def make_batch(rows, idx, kinds):
    """training/data.ts makeBatch, from its definition."""
    r = rows["ids"][idx].astype(np.int64)  # [B, T+1]
    target_kinds = rows["kinds"][idx][:, 1:]  # kind of the target of each input position
    labels = np.where(target_kinds != kinds["none"], r[:, 1:], -1)
    return {
        "inputs": torch.from_numpy(r[:, :-1]),
        "labels": torch.from_numpy(labels),
        "is_state": torch.from_numpy(target_kinds == kinds["state"]),
        "documents": torch.from_numpy(rows["documents"][idx][:, :-1].astype(np.int64)),
        "positions": torch.from_numpy(rows["positions"][idx][:, :-1].astype(np.int64)),
    }


def forward(p, cfg, batch):
    """Logits [B, T, V]."""
    idx, docs, pos = batch["inputs"], batch["documents"], batch["positions"]
    b, t = idx.shape
    d, nh = cfg["nEmbd"], cfg["nHead"]
    hs = d // nh
    x = p["wte.weight"][idx] + p["wpe.weight"][pos]  # [B, T, D]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    allowed = causal & (docs[:, :, None] == docs[:, None, :])  # [B, T, T]
    mask = torch.zeros(b, 1, t, t, dtype=x.dtype).masked_fill(~allowed[:, None], -1e9)  # [B, 1, T, T]
    ln = lambda z, name: F.layer_norm(z, (d,), p[f"{name}.weight"], p[f"{name}.bias"], eps=1e-5)
    lin = lambda z, name: z @ p[f"{name}.weight"] + p[f"{name}.bias"]  # weights [in, out]
    heads = lambda z: z.view(b, t, nh, hs).transpose(1, 2)  # [B, nh, T, hs]
    for i in range(cfg["nLayer"]):
        q, k, v = lin(ln(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn").split(d, dim=2)
        att = (heads(q) @ heads(k).transpose(-2, -1)) / math.sqrt(hs) + mask  # [B, nh, T, T]
        y = (F.softmax(att, dim=-1) @ heads(v)).transpose(1, 2).reshape(b, t, d)
        x = x + lin(y, f"h.{i}.attn.c_proj")
        h = F.gelu(lin(ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc"), approximate="tanh")
        x = x + lin(h, f"h.{i}.mlp.c_proj")
    return ln(x, "ln_f") @ p["wte.weight"].T  # tied head


def losses(logits, batch):
    """Summed CE and counts per objective (next, state)."""
    v = logits.shape[-1]
    labels = batch["labels"].reshape(-1)
    ce = F.cross_entropy(logits.reshape(-1, v), labels.clamp(min=0), reduction="none")
    valid = labels >= 0
    state = valid & batch["is_state"].reshape(-1)
    nxt = valid & ~state
    return (ce * nxt).sum(), nxt.sum().item(), (ce * state).sum(), state.sum().item()


def learning_rate(c, step):
    """training/config.ts learningRate, step 0-based."""
    if step < c["warmupSteps"]:
        return c["lr"] * (step + 1) / (c["warmupSteps"] + 1)
    decay = max(1, c["steps"] - c["warmupSteps"])
    progress = min(1.0, (step - c["warmupSteps"]) / decay)
    lo = c["lr"] * c["minLrRatio"]
    return lo + 0.5 * (c["lr"] - lo) * (1 + math.cos(math.pi * progress))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dump", help="folder written by bench/parity.ts (header.json + binaries)")
    parser.add_argument("--out", required=True, help="JSON log to write")
    parser.add_argument("--perturb", type=float, default=0.0,
                        help="scale every initial weight by (1 + PERTURB · N(0, 1)): a run that differs from the "
                             "unperturbed one by rounding-sized noise only, to measure how far such noise alone "
                             "carries two runs apart")
    parser.add_argument("--perturb-seed", type=int, default=1, help="seed of the perturbation")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="float64 trains the same run with far less rounding: how far it lands from the "
                             "float32 run is what rounding alone does")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(args.dump, "header.json")) as f:
        header = json.load(f)
    if header.get("format") != "execwm-parity" or header.get("byteOrder") != "little-endian":
        sys.exit(f"torch_parity: {args.dump}/header.json is not a parity dump")
    cfg, c, kinds = header["modelConfig"], header["trainConfig"], header["kinds"]
    if cfg["dropout"] != 0:
        sys.exit("torch_parity: dropout > 0 draws different masks in the two paths; use a preset without dropout")
    train_rows, val_rows, batches, weights = load(args.dump, header)
    if args.perturb > 0:
        gen = torch.Generator().manual_seed(args.perturb_seed)
        weights = {name: w * (1 + args.perturb * torch.randn(w.shape, generator=gen)) for name, w in weights.items()}
    dtype = getattr(torch, args.dtype)
    p = {name: torch.nn.Parameter(w.to(dtype)) for name, w in weights.items()}
    decay = [w for w in p.values() if w.dim() >= 2]
    no_decay = [w for w in p.values() if w.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": c["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["epsilon"], foreach=False,
    )
    lam = c["stateWeight"]

    def validate():
        n, bs = header["valRows"], c["batchSize"]
        sums = [0.0, 0, 0.0, 0]
        with torch.no_grad():
            for start in range(0, n, bs):
                batch = make_batch(val_rows, np.arange(start, min(n, start + bs)), kinds)
                parts = losses(forward(p, cfg, batch), batch)
                sums = [s + (x.item() if torch.is_tensor(x) else x) for s, x in zip(sums, parts)]
        nxt = sums[0] / sums[1] if sums[1] else 0.0
        state = sums[2] / sums[3] if sums[3] else 0.0
        return {"loss": nxt + lam * state, "next": nxt, "state": state}

    log = {"torch": torch.__version__, "threads": torch.get_num_threads(), "perturb": args.perturb, "dtype": args.dtype,
           "train": [], "val": [], "step1GradNorms": {}}
    started = time.perf_counter()
    eval_steps = set(header["evalSteps"])
    if 0 in eval_steps:
        log["val"].append({"step": 0, **validate()})
    for step in range(c["steps"]):
        lr = learning_rate(c, step)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = make_batch(train_rows, batches[step], kinds)
        next_sum, next_n, state_sum, state_n = losses(forward(p, cfg, batch), batch)
        nxt = next_sum / max(next_n, 1)
        state = state_sum / max(state_n, 1)
        loss = nxt if lam == 0 else nxt + lam * state
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0:
            log["step1GradNorms"] = {name: w.grad.norm().item() for name, w in p.items()}
        if c["gradClip"] > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(list(p.values()), c["gradClip"]).item()
        else:
            grad_norm = torch.sqrt(sum((w.grad ** 2).sum() for w in p.values())).item()
        opt.step()
        log["train"].append({"step": step + 1, "lr": lr, "loss": loss.item(), "next": nxt.item(),
                             "state": state.item(), "gradNorm": grad_norm})
        if step + 1 in eval_steps:
            log["val"].append({"step": step + 1, **validate()})
        if (step + 1) % 25 == 0 or step == 0:
            print(f"  torch step {step + 1}: loss {loss.item():.4f}"
                  + (f", val {log['val'][-1]['loss']:.4f}" if step + 1 in eval_steps else ""), file=sys.stderr)
    log["seconds"] = time.perf_counter() - started
    with open(args.out, "w") as f:
        json.dump(log, f)


if __name__ == "__main__":
    main()
