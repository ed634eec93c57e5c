"""PyTorch twin of crates/cmr-nn/benches/nn.rs: runs the cases that bench printed (JSON on stdin) in f32 on CPU with
the given thread count, timed the same way (one warm-up, median of at least 5 and up to 1 s or 50 calls), and prints
{"threads": T, "results": [{"name", "pass", "torch_ms"}]} as JSON.

Usage: cargo bench -p cmr-nn --bench nn -- --json | python bench_nn_torch.py THREADS
"""

import json
import sys
import time

import torch
import torch.nn.functional as F


def randn(*shape, std=1.0):
    return (torch.randn(*shape) * std).requires_grad_()


def conv_case(b, c, s, **_):
    x, w = randn(b, c, s, s), randn(c, c, 3, 3, std=(1 / (9 * c)) ** 0.5)
    return [x, w], lambda: F.conv2d(x, w, padding=1)


def attention_case(bh, t, d, **_):
    q, k, v = randn(bh, t, d), randn(bh, t, d), randn(bh, t, d)
    # PyTorch's fused kernel, as diffusers' attention processor calls it
    return [q, k, v], lambda: F.scaled_dot_product_attention(q, k, v)


def group_norm_case(b, c, s, groups, **_):
    x, w, bias = randn(b, c, s, s), randn(c, std=0.1), randn(c, std=0.1)
    return [x, w, bias], lambda: F.group_norm(x, groups, w, bias, eps=1e-5)


def blocks_case(b, c, s, **_):
    def layer():
        return randn(c, std=0.1), randn(c, std=0.1), randn(c, c, 3, 3, std=(1 / (9 * c)) ** 0.5), randn(c, std=0.1)

    blocks = [[layer(), layer()] for _ in range(2)]
    x = randn(b, c, s, s)

    def forward():
        h_in = x
        for block in blocks:
            h = h_in
            for gn_w, gn_b, w, bias in block:
                h = F.silu(F.group_norm(h, 32, gn_w, gn_b, eps=1e-5))
                h = F.conv2d(h, w, bias, padding=1)
            h_in = h_in + h
        return h_in

    params = [p for block in blocks for layer_ in block for p in layer_]
    return [x, *params], forward


CASES = {"conv2d": conv_case, "attention": attention_case, "group_norm": group_norm_case, "blocks": blocks_case}


def median_ms(f):
    f()
    start, samples = time.perf_counter(), []
    while len(samples) < 5 or (time.perf_counter() - start < 1.0 and len(samples) < 50):
        t = time.perf_counter()
        f()
        samples.append((time.perf_counter() - t) * 1e3)
    samples.sort()
    return samples[len(samples) // 2]


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    spec = json.load(sys.stdin)
    results = []
    for case in spec["cases"]:
        inputs, forward = CASES[case["op"]](**case)

        def forward_only():
            with torch.no_grad():
                forward()

        def forward_backward():
            for t in inputs:
                t.grad = None
            forward().sum().backward()

        for name, f in (("fwd", forward_only), ("fwd+bwd", forward_backward)):
            results.append({"name": case["name"], "pass": name, "torch_ms": median_ms(f)})
    json.dump({"threads": torch.get_num_threads(), "torch": torch.__version__, "results": results}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
