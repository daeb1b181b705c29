#!/usr/bin/env python3
"""Fixtures for comparing mamba-node's MambaLM with transformers' MambaForCausalLM.

Builds small random-init MambaForCausalLM models (seeded), saves each with
save_pretrained(safe_serialization=True) into test/fixtures/hf/<name>/, runs one forward/backward with
labels in float32 on the CPU and, when a GPU is present, on CUDA, and writes the inputs and results to
test/fixtures/hf/<name>/fixtures.safetensors:

    input_ids, labels        int64 (batch, L); labels = input_ids, shifted inside transformers' loss
    logits                   float32 (batch, L, vocab), CPU
    loss                     float32 scalar, CPU: mean cross entropy of logits[:, :-1] against labels[:, 1:]
    grad.<parameter name>    float32, CPU, one per model.named_parameters() (a tied lm_head is counted once,
                             under backbone.embeddings.weight)
    cuda.logits, cuda.loss, cuda.grad.<name>   the same on CUDA (absent without a GPU)

Every mixer runs transformers' pure-PyTorch `slow_forward` (the sequential scan; use_mambapy False), on
the CPU and on CUDA: each MambaMixer.forward is rebound to slow_forward, so neither the mamba_ssm /
causal_conv1d kernels nor the kernels hub is used even where they are installed. The file's
__metadata__ records that path, the versions and the CPU-vs-CUDA differences.

Run from the repository root on the GPU machine (PyTorch 2.11, transformers 5.x, no network needed):

    HF_HUB_OFFLINE=1 python3 scripts/make_hf_fixtures.py

Optional: --out DIR (default test/fixtures/hf). The whole output is about 0.5 MB.
"""

import argparse
import inspect
import json
import os
import platform
import sys
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import MambaConfig, MambaForCausalLM  # noqa: E402
from transformers.models.mamba import modeling_mamba  # noqa: E402

BATCH = 2
SEQ_LEN = 12

# Two small models. Every config field is given explicitly so nothing depends on a library default; the
# second model changes what the first leaves at one setting (conv width, rank, biases, tying).
TINY = dict(
    vocab_size=64,  # already a multiple of 8: transformers uses vocab_size as the embedding size
    hidden_size=32,
    state_size=8,
    num_hidden_layers=2,
    layer_norm_epsilon=1e-5,
    expand=2,
    conv_kernel=4,
    use_bias=False,
    use_conv_bias=True,
    hidden_act="silu",
    initializer_range=0.1,
    residual_in_fp32=True,
    time_step_rank="auto",  # ceil(32 / 16) = 2
    time_step_scale=1.0,
    time_step_min=0.001,
    time_step_max=0.1,
    time_step_init_scheme="random",
    time_step_floor=1e-4,
    rescale_prenorm_residual=False,
    use_cache=False,
    use_mambapy=False,
    tie_word_embeddings=True,
)
MODELS = {
    "tiny": dict(seed=0, config=TINY),
    "tiny-untied-bias": dict(
        seed=1,
        config={**TINY, "conv_kernel": 3, "use_bias": True, "use_conv_bias": False, "time_step_rank": 4,
                "tie_word_embeddings": False},
    ),
}


def slow_path_name():
    """MambaMixer's pure-PyTorch forward: `slow_forward` in transformers 4.x. transformers 5 has only `forward`,
    which calls module-level scan/conv functions that fall back to PyTorch when no kernels are installed
    (returns None then; `path_description` records which functions ran)."""
    for name in ("slow_forward", "torch_forward"):
        if callable(getattr(modeling_mamba.MambaMixer, name, None)):
            return name
    return None


def path_description():
    name = slow_path_name()
    if name is not None:
        return f"transformers MambaMixer.{name} (pure PyTorch sequential scan, use_mambapy=False) on every device"
    fns = {n: getattr(modeling_mamba, n, None) for n in ("mamba_selective_scan", "causal_conv1d_fn", "mamba_inner_fn")}
    where = ", ".join(f"{n}={getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}" for n, f in fns.items())
    return f"transformers MambaMixer.forward in eval mode, use_mambapy=False, use_associative_scan=False ({where})"


def force_slow_path(model):
    """Makes every MambaMixer run transformers' pure-PyTorch path; returns the count."""
    name = slow_path_name()
    n = 0
    for module in model.modules():
        if isinstance(module, modeling_mamba.MambaMixer):
            if name is not None:
                module.forward = types.MethodType(lambda self, *a, **k: getattr(self, name)(*a, **k), module)
            module.use_mambapy = False
            if hasattr(module, "use_associative_scan"):
                module.use_associative_scan = False  # the sequential loop, as mamba_ssm's reference
            n += 1
    return n


def fast_kernels_present():
    """Whether transformers found the mamba_ssm / causal_conv1d kernels (they are bypassed either way)."""
    names = ("selective_state_update", "selective_scan_fn", "causal_conv1d_fn", "causal_conv1d_update", "mamba_inner_fn")
    return all(getattr(modeling_mamba, n, None) is not None for n in names)


def run(model, input_ids, labels, device):
    """One float32 forward/backward with labels on `device`: logits, loss and every parameter's gradient."""
    model = model.to(device)
    model.eval()  # Mamba has no dropout; eval only keeps the training-only mamba.py branch out
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        out = model(input_ids=input_ids.to(device), labels=labels.to(device), use_cache=False, return_dict=True)
        out.loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            raise RuntimeError(f"{name} got no gradient")
        grads[name] = p.grad.detach().float().cpu().contiguous()
    return out.logits.detach().float().cpu().contiguous(), out.loss.detach().float().cpu().reshape(()), grads


def max_abs(a, b):
    return float((a - b).abs().max())


def make(name, spec, out_root):
    torch.manual_seed(spec["seed"])
    config = MambaConfig(**spec["config"])
    model = MambaForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        # Move every parameter off its init (ones, zeros, log(1..N)) so each one matters in the comparison.
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mixers = force_slow_path(model)
    if mixers != config.num_hidden_layers:
        raise RuntimeError(f"expected {config.num_hidden_layers} MambaMixer modules, found {mixers}")

    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    # transformers 5 writes safetensors only and may no longer take the flag; 4.x needs it.
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        model.save_pretrained(out_dir, safe_serialization=True)
    else:
        model.save_pretrained(out_dir)
    if not os.path.exists(os.path.join(out_dir, "model.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {out_dir}")

    gen = torch.Generator().manual_seed(1000 + spec["seed"])
    input_ids = torch.randint(0, config.vocab_size, (BATCH, SEQ_LEN), generator=gen, dtype=torch.int64)
    labels = input_ids.clone()

    logits, loss, grads = run(model, input_ids, labels, "cpu")
    tensors = {"input_ids": input_ids, "labels": labels, "logits": logits, "loss": loss}
    tensors.update({f"grad.{k}": v for k, v in grads.items()})
    meta = {
        "path": path_description(),
        "fast_kernels_installed": str(fast_kernels_present()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": "float32",
        "loss": "mean cross entropy of logits[:, :-1] against labels[:, 1:] (transformers shifts inside the model)",
        "seed": str(spec["seed"]),
        "config": json.dumps(spec["config"], sort_keys=True),
    }
    if torch.cuda.is_available():
        # Real float32 on the GPU: no TF32 in matmuls or the cuDNN conv.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        c_logits, c_loss, c_grads = run(model, input_ids, labels, "cuda")
        tensors["cuda.logits"] = c_logits
        tensors["cuda.loss"] = c_loss
        tensors.update({f"cuda.grad.{k}": v for k, v in c_grads.items()})
        meta["cuda_device"] = torch.cuda.get_device_name(0)
        meta["cuda_vs_cpu_max_abs_logits"] = repr(max_abs(c_logits, logits))
        meta["cuda_vs_cpu_max_abs_loss"] = repr(max_abs(c_loss, loss))
        meta["cuda_vs_cpu_max_abs_grad"] = repr(max(max_abs(c_grads[k], grads[k]) for k in grads))
        model.to("cpu")
    else:
        meta["cuda_device"] = "none (no CUDA results in this file)"
    save_file(tensors, os.path.join(out_dir, "fixtures.safetensors"), metadata=meta)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, loss {loss.item():.6f}, {size} bytes in {out_dir}")
    for k in ("cuda_vs_cpu_max_abs_logits", "cuda_vs_cpu_max_abs_loss", "cuda_vs_cpu_max_abs_grad"):
        if k in meta:
            print(f"  {k} = {meta[k]}")
    return size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("test", "fixtures", "hf"))
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True, warn_only=True)
    total = sum(make(name, spec, args.out) for name, spec in MODELS.items())
    print(f"total {total} bytes")
    if total > 1_000_000:
        sys.exit("fixtures exceed 1 MB: make the models smaller")


if __name__ == "__main__":
    main()
