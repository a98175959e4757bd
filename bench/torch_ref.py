"""PyTorch reference for bench/train.ts: the same GPT (pre-LayerNorm, causal attention, tanh-GELU
MLP, tied head, GPT-2 init) trained on a fixed batch with AdamW; prints one JSON line with tokens/s.

Run with Debian's python (`/usr/bin/python3`, where python3-torch installs), one torch thread and
OPENBLAS_NUM_THREADS=2, as bench/train.ts does.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        heads = lambda z: z.view(b, t, self.h, d // self.h).transpose(1, 2)  # [B, nh, T, hs]
        q, k, v = heads(q), heads(k), heads(v)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.h) + mask[:t, :t]
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, block, n_layer, n_head, d):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block, d)
        self.h = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer("mask", torch.triu(torch.full((block, block), -1e9), diagonal=1))
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x, self.mask)
        return self.ln_f(x) @ self.wte.weight.T  # tied head


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab, block, n_layer, n_head, d, batch = 256, 128, 2, 4, 128, 16
    model = GPT(vocab, block, n_layer, n_head, d)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    tokens = torch.tensor([(i * 2654435761) % 251 for i in range(batch * (block + 1))]).view(batch, block + 1)
    idx, labels = tokens[:, :-1], tokens[:, 1:]

    def step():
        logits = model(idx)
        loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    step()
    step()
    t0 = time.perf_counter()
    c0 = time.process_time()
    fastest = math.inf  # the step least slowed by other processes
    for _ in range(args.steps):
        s0 = time.perf_counter()
        step()
        fastest = min(fastest, time.perf_counter() - s0)
    ms = (time.perf_counter() - t0) * 1000 / args.steps
    cpu_ms = (time.process_time() - c0) * 1000 / args.steps  # all threads of the process
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"tokensPerSec": batch * block * 1000 / ms, "msPerStep": round(ms, 1),
                      "fastestStepMs": round(fastest * 1000, 1), "cpuMsPerStep": round(cpu_ms, 1),
                      "params": params, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
