"""Why a lone continuous root of a modular GAN-NCM fits the exact 1-D W1 instead of a critic.

A plain WGAN-GP on one N(0, 1) column, with the generator and critic that ``GANNCM`` builds
for a root (``SkipMLP`` started at ``v = ε``; a LeakyReLU critic MLP; Adam with betas
(0.5, 0.9), gradient penalty 10, an EMA of the generator's iterates, as ``GANNCM.fit``),
against the same generator trained on the exact 1-D Wasserstein-1 distance of sorted samples
(``_sorted_w1``, the loss ``GANNCM`` now uses for such groups). Grid: learning rate ×
``n_critic`` × seed; reported: the fitted generator's standard deviation (truth 1) and the W1
of 20,000 draws to a fresh N(0, 1) sample. Writes ``results/gan_root_collapse.{json,md}``.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gan_root_collapse.py          # ~2 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gan_root_collapse.py --steps 200 --seeds 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from deepscm.io import to_jsonable  # noqa: E402
from deepscm.mechanisms.base import MAX_GRAD_NORM  # noqa: E402
from deepscm.ncm import GANNCM  # noqa: E402
from deepscm.ncm.gan import _sorted_w1  # noqa: E402
from machine import machine_info, report_header  # noqa: E402

torch.set_num_threads(1)


def networks(data: pd.DataFrame, seed: int, hidden: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """The generator and critic ``GANNCM`` builds for a one-node graph (its ``_setup``)."""
    model = GANNCM("z", seed=seed, hidden=hidden)
    model._setup(data)
    return model.generators["z"], model.critics[0]


def fit_one(real: torch.Tensor, generator: nn.Module, critic: nn.Module | None, *, steps: int,
            n_critic: int, lr: float, batch: int, ema: float, seed: int) -> nn.Module:
    """``GANNCM.fit``'s loop for one scalar column: WGAN-GP with ``critic``, or the exact
    sorted W1 when ``critic`` is None; returns the EMA of the generator's iterates."""
    gen = torch.Generator().manual_seed(seed + 1)
    g_opt = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.9))
    d_opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9)) if critic is not None else None
    average = [p.detach().clone() for p in generator.parameters()]

    width = generator.linear.in_features  # the shared latent u_C and the node's own noise

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        r = real[torch.randint(len(real), (batch,), generator=gen)]
        return r, generator(torch.randn(batch, width, generator=gen))

    for _ in range(steps):
        for _ in range(n_critic if critic is not None else 0):
            with torch.no_grad():
                r, f = draw()
            m = torch.rand(batch, 1, generator=gen)
            mix = (m * r + (1 - m) * f).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
            loss = critic(f).mean() - critic(r).mean() + 10.0 * (grad.norm(dim=-1) - 1).square().mean()
            d_opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), MAX_GRAD_NORM)
            d_opt.step()
        r, f = draw()
        g_loss = _sorted_w1(f, r) if critic is None else -critic(f).mean()
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        nn.utils.clip_grad_norm_(generator.parameters(), MAX_GRAD_NORM)
        g_opt.step()
        with torch.no_grad():
            for a, p in zip(average, generator.parameters()):
                a.lerp_(p, 1 - ema)
    with torch.no_grad():
        for a, p in zip(average, generator.parameters()):
            p.copy_(a)
    return generator


def score(generator: nn.Module, seed: int) -> dict[str, float]:
    """The fitted column's sd and its W1 to a fresh N(0, 1) sample (20,000 draws each)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    with torch.no_grad():
        fake = generator(torch.randn(20_000, generator.linear.in_features, generator=g))
    fresh = torch.randn(20_000, 1, generator=g)
    return {"sd": float(fake.std()), "w1": float(_sorted_w1(fake, fresh))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="generator steps (ncm_continuous: 500)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument("--n-critics", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--out", default=str(ROOT / "results" / "gan_root_collapse.json"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    info = machine_info()
    hidden = (32, 32)  # the widths of benchmarks/ncm_continuous.py
    rows = []
    for seed in range(args.seeds):
        data = pd.DataFrame({"z": np.random.default_rng(seed).normal(size=args.rows)})
        real = torch.tensor(data["z"].to_numpy(), dtype=torch.float32).unsqueeze(-1)
        real = (real - real.mean()) / real.std(correction=0)  # GANNCM's standardisation
        for lr in args.lrs:
            configs = [("exact W1", None)] + [("WGAN-GP", k) for k in args.n_critics]
            for loss, n_critic in configs:
                generator, critic = networks(data, seed, hidden)
                fitted = fit_one(real, generator, critic if n_critic else None, steps=args.steps,
                                 n_critic=n_critic or 1, lr=lr, batch=256, ema=0.99, seed=seed)
                rows.append({"seed": seed, "lr": lr, "loss": loss, "n_critic": n_critic, **score(fitted, seed)})
                print(f"seed {seed} lr {lr:g} {loss} n_critic {n_critic}: sd {rows[-1]['sd']:.3f} "
                      f"W1 {rows[-1]['w1']:.3f}", flush=True)
    runtime = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "args": vars(args), "hidden": hidden, "rows": rows, "runtime_s": runtime}
    out.write_text(json.dumps(to_jsonable(result), indent=1) + "\n")

    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gan_root_collapse.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:]) if (argv or sys.argv[1:]) else "")
    lines = ["# A lone continuous root: WGAN-GP against the exact 1-D W1", "",
             *report_header(command, info, runtime), "",
             f"{args.rows} rows of N(0, 1); {args.steps} generator steps, batch 256, EMA 0.99, "
             f"generator hidden {hidden} as in `benchmarks/ncm_continuous.py`; sd and W1 of 20,000 "
             f"draws (truth: sd 1, W1 0). Seeds {list(range(args.seeds))}: min – max over seeds.", "",
             "| lr | loss | n_critic | sd | W1 to N(0, 1) |", "|---:|---|---:|---|---|"]
    ordered = sorted(rows, key=lambda r: (r["lr"], r["loss"] != "exact W1", r["n_critic"] or 0))
    for (lr, loss, n_critic), group in itertools.groupby(ordered, key=lambda r: (r["lr"], r["loss"], r["n_critic"])):
        g = list(group)
        sd, w1 = [r["sd"] for r in g], [r["w1"] for r in g]
        lines.append(f"| {lr:g} | {loss} | {n_critic or '–'} | {min(sd):.3f} – {max(sd):.3f} | "
                     f"{min(w1):.3f} – {max(w1):.3f} |")
    gan = [r["sd"] for r in rows if r["loss"] == "WGAN-GP"]
    exact = [r["sd"] for r in rows if r["loss"] == "exact W1"]
    lines += ["", f"Over the whole grid: WGAN-GP sd {min(gan):.3f} – {max(gan):.3f}; exact W1 sd "
                  f"{min(exact):.3f} – {max(exact):.3f}.", ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
