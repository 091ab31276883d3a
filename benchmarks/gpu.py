"""The GPU path against the CPU and against PyOD's AutoEncoder on the same GPU.

Needs a CUDA GPU (exits with a message, status 0, without one). In one process, each
timed fit preceded by a warm-up fit of the same kind (CUDA context, cuBLAS/cuDNN
handles, PyOD's numba kernel), timers read after the work is back on the host (every
fit ends with its training scores in numpy):

1. **Same scores.** Every autoencoder family with its defaults is fitted on the CPU on
   ``PARITY_ROWS`` generated rows, moved with ``to_device("cuda")`` and scores the same
   rows: the largest absolute difference over the largest |CPU score|. Then a fit on
   the GPU from the same seed: the correlation of its scores with the CPU fit's, and
   the largest gap when one row is scored alone instead of with all others.
2. **Fit and score speed, our defaults.** Each tabular family with its defaults on
   ``FIT_ROWS`` x 32 generated rows (members, latent term and all): fit seconds on the
   CPU (all of the machine's cores), on the GPU, and on the GPU with ``amp=True``;
   then ``decision_function`` of ``SCORE_ROWS`` rows on each (rows per second).
3. **PyOD's AutoEncoder on the same GPU**, PyOD's default network and settings
   (``benchmarks.speed.PYOD_SETTINGS``), against our ``ae`` with the same layers and
   settings (``benchmarks.speed.OURS_PYOD_SETTINGS``), on ``PYOD_ROWS`` rows x
   ``PYOD_EPOCHS`` epochs: fit and score seconds.
4. **Images**: conv Toll with its defaults on ``benchmarks.mnist_conv.SPEED_ROWS``
   MNIST images of one digit (when the shared data is there), on the CPU, the GPU,
   the GPU with ``amp=True``, and the paper's network (``backbone="toll-mnist"``).

Run ``python -m benchmarks.gpu [--quick] [--json PATH]``; progress on stderr, the
markdown report on stdout.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import DatasetsMissing, environment, log
from .speed import OURS_PYOD_SETTINGS, PYOD_SETTINGS, make_data

PARITY_ROWS = 2000
FIT_ROWS, SCORE_ROWS = 20_000, 1_000_000
PYOD_ROWS, PYOD_EPOCHS = 100_000, 2
PARTS = ("parity", "speed", "pyod", "images")
QUICK = {"parity_rows": 300, "fit_rows": 2000, "score_rows": 20_000, "pyod_rows": 5000, "images": 500}


def tabular_families() -> list:
    import pyod_ae_ext
    from pyod_ae_ext.registry import get_registry

    registry = get_registry()
    return [name for name in registry.detectors if name != "ensemble"
            and "device" in registry.resolve(name).parameters()
            and pyod_ae_ext.make_detector(name).backbone == "mlp"]


def timed(work) -> tuple:
    import torch

    torch.cuda.synchronize()
    started = time.perf_counter()
    result = work()
    torch.cuda.synchronize()
    return result, time.perf_counter() - started


def parity(names, rows: int) -> list:
    import pyod_ae_ext

    X = make_data(rows, seed=1)
    out = []
    for name in names:
        fitted = pyod_ae_ext.make_detector(name, random_state=0, device="cpu").fit(X)
        cpu = fitted.decision_function(X)
        moved = fitted.to_device("cuda").decision_function(X)
        on_gpu = pyod_ae_ext.make_detector(name, random_state=0, device="cuda").fit(X)
        gpu = on_gpu.decision_function(X)
        alone = np.array([on_gpu.decision_function(X[i:i + 1])[0] for i in range(0, rows, max(1, rows // 50))])
        scale = np.abs(cpu).max()
        out.append({"family": name, "moved_gap": float(np.abs(moved - cpu).max() / scale),
                    "gpu_fit_corr": float(np.corrcoef(cpu, gpu)[0, 1]),
                    "alone_gap": float(np.abs(alone - gpu[::max(1, rows // 50)]).max())})
        log(f"parity {name}: {out[-1]}")
    return out


def speed(names, fit_rows: int, score_rows: int) -> list:
    import pyod_ae_ext

    X = make_data(fit_rows)
    X_score = make_data(score_rows, seed=2)
    out = []
    for name in names:
        cell = {"family": name}
        for label, params in (("cpu", {"device": "cpu"}), ("cuda", {"device": "cuda"}),
                              ("cuda_amp", {"device": "cuda", "amp": True})):
            pyod_ae_ext.make_detector(name, random_state=1, **params).fit(X[:600])  # warm-up
            detector = pyod_ae_ext.make_detector(name, random_state=0, **params)
            _, cell[f"{label}_fit_s"] = timed(lambda: detector.fit(X))
            detector.decision_function(X_score[:1000])
            _, cell[f"{label}_score_s"] = timed(lambda: detector.decision_function(X_score))
        out.append(cell)
        log(f"speed {name}: {cell}")
    return out


def pyod_comparison(rows: int, epochs: int) -> list:
    import pyod_ae_ext
    from pyod.models.auto_encoder import AutoEncoder

    X = make_data(rows)
    builds = {
        "PyOD AutoEncoder, cuda": lambda e: AutoEncoder(epoch_num=e, device="cuda", **PYOD_SETTINGS),
        "our ae, PyOD settings, cuda": lambda e: pyod_ae_ext.make_detector(
            "ae", epochs=e, device="cuda", **OURS_PYOD_SETTINGS),
        "our ae, PyOD settings, cpu": lambda e: pyod_ae_ext.make_detector(
            "ae", epochs=e, device="cpu", **OURS_PYOD_SETTINGS),
    }
    out = []
    for label, build in builds.items():
        build(1).fit(X[:512]).decision_function(X[:512])
        detector = build(epochs)
        _, fit_s = timed(lambda: detector.fit(X))
        _, score_s = timed(lambda: detector.decision_function(X))
        out.append({"impl": label, "fit_s": fit_s, "score_s": score_s})
        log(f"pyod comparison {label}: fit {fit_s:.2f}s score {score_s:.2f}s")
    return out


def images(rows: int | None) -> list:
    import pyod_ae_ext

    from .mnist_conv import SPEED_ROWS, _load

    X, y = _load(1, None, 0)
    X = X[y == 0][:rows or SPEED_ROWS]
    out = []
    for label, params in (("conv, cpu", {"backbone": "conv", "device": "cpu"}),
                          ("conv, cuda", {"backbone": "conv", "device": "cuda"}),
                          ("conv, cuda, amp", {"backbone": "conv", "device": "cuda", "amp": True}),
                          ("toll-mnist, cuda", {"backbone": "toll-mnist", "device": "cuda"}),
                          ("toll-mnist, cuda, amp", {"backbone": "toll-mnist", "device": "cuda", "amp": True})):
        pyod_ae_ext.make_detector("toll", epochs=1, random_state=1, **params).fit(X[:256])
        detector = pyod_ae_ext.make_detector("toll", random_state=0, **params)
        _, fit_s = timed(lambda: detector.fit(X))
        out.append({"impl": label, "fit_s": fit_s, "images": len(X), "epochs": detector.n_epochs_})
        log(f"images {label}: fit {fit_s:.1f}s")
    return out


def report(result: dict) -> str:
    env = result["environment"]
    lines = [f"`{result['command']}` on {env.get('cuda')} (CPU: {env['cpu']}, {env['torch_threads']} threads; "
             f"torch {env['torch']}, PyOD {env['pyod']})."]
    if result.get("parity"):
        lines += ["", f"**Same scores** ({result['sizes']['parity_rows']} rows, defaults):", "",
                  "| family | CPU model moved to GPU: max gap / max score | GPU fit vs CPU fit: correlation "
                  "| row alone vs with all (GPU): max gap |", "|:--|--:|--:|--:|"]
        lines += [f"| {c['family']} | {c['moved_gap']:.1e} | {c['gpu_fit_corr']:.6f} | {c['alone_gap']:.1e} |"
                  for c in result["parity"]]
    fit_rows, score_rows = result["sizes"]["fit_rows"], result["sizes"]["score_rows"]
    if result.get("speed"):
        lines += ["", f"**Defaults, fit on {fit_rows:,} x 32 rows, score {score_rows:,} rows** (seconds; "
                  "speed-up of the GPU over the CPU in brackets):", "",
              "| family | fit CPU | fit GPU | fit GPU amp | score CPU | score GPU | score GPU amp | GPU rows/s |",
                  "|:--|--:|--:|--:|--:|--:|--:|--:|"]
    for c in result.get("speed", []):
        lines.append(
            f"| {c['family']} | {c['cpu_fit_s']:.2f} | {c['cuda_fit_s']:.2f} ({c['cpu_fit_s'] / c['cuda_fit_s']:.1f}x)"
            f" | {c['cuda_amp_fit_s']:.2f} | {c['cpu_score_s']:.2f} | {c['cuda_score_s']:.3f} "
            f"({c['cpu_score_s'] / c['cuda_score_s']:.0f}x) | {c['cuda_amp_score_s']:.3f} "
            f"| {score_rows / c['cuda_score_s'] / 1e6:.1f}M |")
    if result.get("pyod"):
        pyod_rows = result["sizes"]["pyod_rows"]
        lines += ["", f"**PyOD's network and settings, {pyod_rows:,} rows x {PYOD_EPOCHS} epochs** (seconds):", "",
                  "| implementation | fit | score |", "|:--|--:|--:|"]
        lines += [f"| {c['impl']} | {c['fit_s']:.2f} | {c['score_s']:.2f} |" for c in result["pyod"]]
    if result.get("images"):
        first = result["images"][0]
        lines += ["", f"**Conv Toll, defaults, {first['images']:,} MNIST images of digit 1** (fit seconds):", "",
                  "| network, device | fit | epochs |", "|:--|--:|--:|"]
        lines += [f"| {c['impl']} | {c['fit_s']:.1f} | {c['epochs']} |" for c in result["images"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which parts to run (default: all)")
    parser.add_argument("--families", nargs="+", metavar="NAME",
                        help="tabular families of parts parity and speed (default: every one with an MLP default)")
    parser.add_argument("--json", type=Path, help="also write every cell here")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("benchmarks.gpu needs a CUDA GPU; none is available here", file=sys.stderr)
        return 0
    sizes = QUICK if args.quick else {"parity_rows": PARITY_ROWS, "fit_rows": FIT_ROWS, "score_rows": SCORE_ROWS,
                                      "pyod_rows": PYOD_ROWS, "images": None}
    names = args.families or tabular_families()
    command = " ".join(["python -m benchmarks.gpu", *(["--quick"] if args.quick else []),
                        *(["--parts", *args.parts] if set(args.parts) != set(PARTS) else []),
                        *(["--families", *args.families] if args.families else [])])
    result = {"command": command, "environment": environment(), "sizes": sizes}
    if "parity" in args.parts:
        result["parity"] = parity(names, sizes["parity_rows"])
    if "speed" in args.parts:
        result["speed"] = speed(names, sizes["fit_rows"], sizes["score_rows"])
    if "pyod" in args.parts:
        result["pyod"] = pyod_comparison(sizes["pyod_rows"], PYOD_EPOCHS if not args.quick else 1)
    if "images" in args.parts:
        try:
            result["images"] = images(sizes["images"])
        except DatasetsMissing as exc:
            log(f"images skipped: {exc}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
