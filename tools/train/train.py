#!/usr/bin/python3
"""Train qinfer's embedded default model: a small llama-architecture
transformer over token ids that tools/train/prep produced with qinfer's own
tokenizer.

The model is written out here so that every detail matches what llama.cpp
(and qinfer's host/model) computes for general.architecture = "llama":

  - RMSNorm: x * rsqrt(mean(x^2) + eps) * w, eps 1e-5;
  - RoPE on adjacent pairs (x[2i], x[2i+1]) with theta_i = pos *
    base^(-2i/head_dim), base 10000 (llama.cpp's "normal" rope, so the
    weights need no permutation);
  - grouped-query attention: query head h reads KV head h // (heads/kv_heads);
  - SwiGLU feed-forward down(silu(gate(x)) * up(x)); no biases anywhere;
  - output classifier tied to the token embeddings (GGUF: no output.weight).

Outputs in --out: weights.bin (float32, tensors in the order and with the
GGUF names listed in config.json), config.json, eval-python.json (held-out
perplexity with llama-perplexity's protocol), and with --ref the
last-position logits of the first --ref-prompts demo prompts.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(head_dim, ctx, base):
    # theta_i = pos * base^(-2i/head_dim), one angle per adjacent pair.
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.outer(torch.arange(ctx, dtype=torch.float64), inv)
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    # x: (B, T, H, D); rotate (x[2i], x[2i+1]) by the pair's angle.
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c = cos[: x.shape[1]].unsqueeze(0).unsqueeze(2)
    s = sin[: x.shape[1]].unsqueeze(0).unsqueeze(2)
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, hd = cfg["dim"], cfg["head_dim"]
        self.heads, self.kv_heads, self.hd = cfg["heads"], cfg["kv_heads"], hd
        self.attn_norm = RMSNorm(d, cfg["norm_eps"])
        self.wq = torch.nn.Linear(d, self.heads * hd, bias=False)
        self.wk = torch.nn.Linear(d, self.kv_heads * hd, bias=False)
        self.wv = torch.nn.Linear(d, self.kv_heads * hd, bias=False)
        self.wo = torch.nn.Linear(self.heads * hd, d, bias=False)
        self.ffn_norm = RMSNorm(d, cfg["norm_eps"])
        self.gate = torch.nn.Linear(d, cfg["ffn"], bias=False)
        self.up = torch.nn.Linear(d, cfg["ffn"], bias=False)
        self.down = torch.nn.Linear(cfg["ffn"], d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = apply_rope(self.wq(h).view(B, T, self.heads, self.hd), cos, sin)
        k = apply_rope(self.wk(h).view(B, T, self.kv_heads, self.hd), cos, sin)
        v = self.wv(h).view(B, T, self.kv_heads, self.hd)
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=2)
        v = v.repeat_interleave(rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd))
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.heads * self.hd)
        x = x + self.wo(y)
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok = torch.nn.Embedding(cfg["vocab"], cfg["dim"])
        self.blocks = torch.nn.ModuleList(Block(cfg) for _ in range(cfg["layers"]))
        self.norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        cos, sin = rope_tables(cfg["head_dim"], cfg["ctx"], cfg["rope_base"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        mask = torch.triu(torch.ones(cfg["ctx"], cfg["ctx"], dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, 0.0, std)
            # Residual outputs scaled down by depth, as in GPT-2.
            if name.endswith("wo.weight") or name.endswith("down.weight"):
                torch.nn.init.normal_(p, 0.0, std / math.sqrt(2 * cfg["layers"]))

    def forward(self, ids):
        x = self.tok(ids)
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        return self.norm(x) @ self.tok.weight.t()

    def gguf_tensors(self):
        """(GGUF name, float32 array of shape [rows, cols]) in file order."""
        out = [("token_embd.weight", self.tok.weight)]
        for i, b in enumerate(self.blocks):
            p = f"blk.{i}."
            out += [
                (p + "attn_norm.weight", b.attn_norm.weight),
                (p + "attn_q.weight", b.wq.weight),
                (p + "attn_k.weight", b.wk.weight),
                (p + "attn_v.weight", b.wv.weight),
                (p + "attn_output.weight", b.wo.weight),
                (p + "ffn_norm.weight", b.ffn_norm.weight),
                (p + "ffn_gate.weight", b.gate.weight),
                (p + "ffn_up.weight", b.up.weight),
                (p + "ffn_down.weight", b.down.weight),
            ]
        out.append(("output_norm.weight", self.norm.weight))
        return [(n, t.detach().float().contiguous().numpy()) for n, t in out]


def load_ids(path):
    return torch.from_numpy(np.fromfile(path, dtype="<u2").astype(np.int64))


def batch(data, bsz, ctx, gen):
    starts = torch.randint(0, len(data) - ctx - 1, (bsz,), generator=gen)
    x = torch.stack([data[s : s + ctx] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + ctx + 1] for s in starts.tolist()])
    return x, y


def eval_chunks(ids, n, count):
    """Evenly spaced n-token chunks of ids, at most count of them: the
    same selection tools/train/evaluate hands to qinfer."""
    total = len(ids) // n
    count = min(count, total)
    stride = total // count
    return torch.stack([ids[i * stride * n : (i * stride + 1) * n] for i in range(count)])


@torch.no_grad()
def perplexity(model, chunks, bos):
    """llama-perplexity's protocol, as host/engine implements it: each
    chunk starts with BOS and is evaluated from an empty context; the
    tokens after the first half are scored."""
    n = chunks.shape[1]
    first = n // 2
    nll, count = 0.0, 0
    for i in range(0, len(chunks), 8):
        x = chunks[i : i + 8].clone()
        x[:, 0] = bos
        logp = model(x).log_softmax(-1)
        tgt = x[:, first + 1 :]
        lp = logp[:, first : n - 1].gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        nll -= lp.double().sum().item()
        count += tgt.numel()
    return math.exp(nll / count), nll / count, count


@torch.no_grad()
def sample(model, ids, pieces, n):
    ids = list(ids)
    for _ in range(n):
        x = torch.tensor([ids[-model.cfg["ctx"] :]])
        ids.append(int(model(x)[0, -1].argmax()))
    return b"".join(pieces[i] for i in ids[1:]).decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="prep's output folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=704)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=0, help="time budget: the schedule ends after this many minutes of training even if steps remain")
    ap.add_argument("--eval-chunks", type=int, default=64)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--ref", help="write reference logits of the first --ref-prompts demo prompts to this file")
    ap.add_argument("--ref-prompts", type=int, default=3)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.data, "stats.json")) as f:
        stats = json.load(f)
    with open(os.path.join(args.data, "prompts.json")) as f:
        prompts = json.load(f)
    with open(os.path.join(args.data, "pieces.json")) as f:
        pieces = [bytes.fromhex(h) for h in json.load(f)]
    cfg = dict(
        vocab=stats["vocab"], dim=args.dim, layers=args.layers, heads=args.heads,
        kv_heads=args.kv_heads, head_dim=args.dim // args.heads, ffn=args.ffn, ctx=args.ctx,
        norm_eps=1e-5, rope_base=10000.0, bos=stats["bos"], eos=stats["eos"],
    )
    train = load_ids(os.path.join(args.data, "train.bin"))
    evalset = eval_chunks(load_ids(os.path.join(args.data, "eval.bin")), args.ctx, args.eval_chunks)
    model = Llama(cfg)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads; config {json.dumps(cfg)}")
    budget = f", or {args.minutes} minutes, whichever ends first" if args.minutes else ""
    log(f"{nparams} parameters; {len(train)} training tokens; {args.steps} steps of {args.batch}x{args.ctx} tokens{budget}")

    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    smooth = None
    step = 0
    for step in range(1, args.steps + 1):
        # Linear warm-up, then cosine decay to a tenth of the peak over the
        # step budget or the time budget, whichever runs out first: on a
        # shared machine the time budget keeps the schedule complete.
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        if args.minutes:
            frac = max(frac, (time.time() - t0) / (args.minutes * 60))
        if step <= args.warmup:
            lr = args.lr * step / args.warmup
        else:
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, args.batch, args.ctx, gen)
        loss = F.cross_entropy(model(x).view(-1, cfg["vocab"]), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % args.log_every == 0 or step == args.steps:
            el = time.time() - t0
            log(f"step {step}/{args.steps} loss {loss.item():.3f} (smoothed {smooth:.3f}) lr {lr:.2e} "
                f"{step * args.batch * args.ctx / el:.0f} tok/s, {el / 60:.1f} min")
        if frac >= 1.0 and step > args.warmup:
            if step < args.steps:
                log(f"step {step}/{args.steps} loss {loss.item():.3f} (smoothed {smooth:.3f}): "
                    f"time budget of {args.minutes} min reached, {step * args.batch * args.ctx} tokens seen")
            break
    train_s = time.time() - t0

    model.eval()
    ppl, nll, count = perplexity(model, evalset, cfg["bos"])
    log(f"held-out perplexity {ppl:.3f} (mean NLL {nll:.4f} nats over {count} tokens, {len(evalset)} chunks of {args.ctx})")
    for p in prompts:
        log("sample (greedy, float model): " + json.dumps(sample(model, p["ids"], pieces, 48)))

    tensors = model.gguf_tensors()
    meta, off = [], 0
    with open(os.path.join(args.out, "weights.bin"), "wb") as f:
        for name, a in tensors:
            f.write(a.astype("<f4").tobytes())
            meta.append({"name": name, "shape": list(a.shape), "offset": off})
            off += a.size * 4
    cfg.update(tensors=meta, params=nparams, steps=step, tokens_seen=step * args.batch * args.ctx,
               batch=args.batch, lr=args.lr, seed=args.seed,
               train_seconds=round(train_s, 1), final_loss=round(smooth, 4))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(args.out, "eval-python.json"), "w") as f:
        json.dump({"perplexity": ppl, "nll": nll, "tokens": count, "chunks": len(evalset), "ctx": args.ctx}, f, indent=1)

    if args.ref:
        refs = []
        with torch.no_grad():
            for p in prompts[: args.ref_prompts]:
                logits = model(torch.tensor([p["ids"]]))[0, -1]
                refs.append({"text": p["text"], "ids": p["ids"], "logits": [float(f"{v:.6g}") for v in logits.tolist()]})
        with open(args.ref, "w") as f:
            json.dump({"source": "tools/train/train.py, float32 PyTorch model before quantization", "prompts": refs}, f)
            f.write("\n")
    log(f"done: {train_s / 60:.1f} min of training")


if __name__ == "__main__":
    sys.exit(main())
