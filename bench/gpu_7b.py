"""GPU benchmark: a real-size Qwen2-Audio (7B) with random weights, bf16, on one GPU.

    python -m bench.gpu_7b                           # on a GPU: a few minutes in all
    python -m bench.gpu_7b --dims small --device cpu --dtype float32 --items 2 --clips 2 \
        --reps 1 --max-gen-toks 4                    # the same code path on CPU, to check it

Speed does not depend on weight values, so no download is needed: the model is built from
Qwen2-Audio-7B's configuration dimensions (written out below) directly on the device in the
target dtype, and given to our `Qwen2AudioLM` (and lm-eval's patched class with --lmeval) as a
model object. The tokenizer is the offline BPE of `lm_eval_audio.tiny.qwen2_audio` (only the text around
the audio differs in length from the real one's; the 156k-row LM head and embeddings are real
size). Clips are synthetic signals of spoken-question and LibriSpeech-like lengths: content does
not change the cost, length does.

Reports items/s for spoken-MMLU loglikelihood (ours, own-length and 30 s encoder; naive
per-request forward) and ASR generation (ours at batch 1 and at --gen-batch), peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._harness import (
    Case,
    asr_requests,
    count_calls,
    fmt_mib,
    mc_requests,
    measure,
    naive_loglikelihood,
    table,
)

logger = logging.getLogger("bench.gpu_7b")

# Qwen2-Audio-7B(-Instruct) config.json: Whisper-large-v3-sized encoder (128 mels), Qwen-7B LM.
DIMS = {
    "7b": dict(
        audio=dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                   num_mel_bins=128, max_source_positions=1500),
        text=dict(vocab_size=156032, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, intermediate_size=11008, max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=10000.0),
    ),
    # Same code path, small enough to run on a laptop CPU (the `small` checkpoint's dimensions).
    "small": dict(
        audio=dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                   num_mel_bins=128, max_source_positions=1500),
        text=dict(vocab_size=2000, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                  num_key_value_heads=4, intermediate_size=1408, max_position_embeddings=4096,
                  rms_norm_eps=1e-6, rope_theta=10000.0),
    ),
}


def write_processor(out: Path):
    """Tokenizer + Whisper feature extractor (128 mels) + chat template: everything but weights."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    from lm_eval_audio.tiny.tokenizer import train_tokenizer

    tok = train_tokenizer(2000)
    proc = Qwen2AudioProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok)
    proc.chat_template = tok.chat_template = proc.default_chat_template
    proc.save_pretrained(out)
    tok.save_pretrained(out)
    return tok


def build_model(dims: str, tok, device: str, dtype: torch.dtype, name_or_path: str):
    """A randomly initialised Qwen2AudioForConditionalGeneration created on `device` in `dtype`."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    d = DIMS[dims]
    text = dict(d["text"])
    rope_theta = text.pop("rope_theta")
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2AudioConfig(
        audio_config=d["audio"],
        text_config=dict(model_type="qwen2", **text, rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
                         eos_token_id=eos, pad_token_id=tok.pad_token_id, tie_word_embeddings=False),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    config._name_or_path = name_or_path  # where the processor lives: both model classes load it from there
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        # Parameters are allocated and initialised on the device in the target dtype: no
        # 34 GB float32 copy in host memory first.
        with torch.device(device):
            model = Qwen2AudioForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def synthetic_clips(n: int, lo: float, hi: float, seed: int) -> list[np.ndarray]:
    """`n` 16 kHz signals with lengths spread evenly over [lo, hi] s (noise under a syllable-rate envelope)."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in np.linspace(lo, hi, n):
        t = np.arange(int(seconds * 16_000)) / 16_000
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
        clips.append((0.1 * envelope * rng.standard_normal(t.size)).astype(np.float32))
    return clips


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", choices=sorted(DIMS), default="7b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--items", type=int, default=64, help="spoken-MMLU items (4 requests each)")
    p.add_argument("--mc-seconds", default="5,13", help="clip length range of spoken questions (s)")
    p.add_argument("--ll-batch", type=int, default=8)
    p.add_argument("--clips", type=int, default=16, help="ASR clips")
    p.add_argument("--asr-seconds", default="2,10", help="clip length range of ASR clips (s)")
    p.add_argument("--gen-batch", type=int, default=16)
    p.add_argument("--max-gen-toks", type=int, default=48)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-naive", action="store_true", help="skip the naive per-request loglikelihood baseline")
    p.add_argument("--lmeval", action="store_true", help="also time lm-eval's patched hf-audiolm-qwen at --gen-batch")
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the random model, time both workloads, print the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("lm_eval", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --device cpu --dims small --dtype float32 to check the code path")
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)

    from lm_eval_audio.models.qwen2audio import Qwen2AudioLM

    with tempfile.TemporaryDirectory(prefix="qwen2audio-7b-proc-") as tmp:
        t0 = time.perf_counter()
        tok = write_processor(Path(tmp))
        model = build_model(args.dims, tok, args.device, dtype, tmp)
        build_s = time.perf_counter() - t0
        n_params = sum(p.numel() for p in model.parameters())
        logger.info("built random %s Qwen2-Audio (%.2f B parameters, %s) on %s in %.1f s",
                    args.dims, n_params / 1e9, args.dtype, args.device, build_s)
        lm = Qwen2AudioLM(pretrained=model, batch_size=args.ll_batch)
        lmeval = None
        if args.lmeval:
            from bench.patched_hf_audiolm import patched_class

            lmeval = patched_class()(pretrained=model, batch_size=args.gen_batch)

    lo, hi = map(float, args.mc_seconds.split(","))
    mc = [{"array": a, "sampling_rate": 16_000} for a in synthetic_clips(args.items, lo, hi, seed=1)]
    lo, hi = map(float, args.asr_seconds.split(","))
    asr = synthetic_clips(args.clips, lo, hi, seed=2)
    ll_requests = mc_requests(mc)
    gen_requests = asr_requests(asr, args.max_gen_toks)

    def ll(own_length):
        def run():
            lm.encoder_own_length = own_length
            lm.batch_size_per_gpu = args.ll_batch
            with count_calls(lm) as calls:
                out = lm.loglikelihood(ll_requests, disable_tqdm=True)
            lm.encoder_own_length = True
            return out, calls["calls"]
        return run

    def gen(model_lm, bs):
        def run():
            model_lm.batch_size_per_gpu = bs
            return model_lm.generate_until(gen_requests, disable_tqdm=True)
        return run

    ll_cases = [Case("ours, own-length encoder", ll(True), args.items, baseline="ours, stock 30 s encoder"),
                Case("ours, stock 30 s encoder", ll(False), args.items)]
    if not args.no_naive:
        naive = Case("naive per-request forward", lambda: (naive_loglikelihood(lm, ll_requests, args.ll_batch), None),
                     args.items)
        ll_cases.append(naive)
        ll_cases[0].baseline = ll_cases[1].baseline = naive.name
    logger.info("spoken-MMLU loglikelihood: %d items, %d requests", args.items, len(ll_requests))
    measure(ll_cases, args.reps, device=args.device)

    gen_cases = [Case("ours, batch 1", gen(lm, 1), args.clips),
                 Case(f"ours, batch {args.gen_batch}", gen(lm, args.gen_batch), args.clips, baseline="ours, batch 1")]
    if lmeval is not None:
        gen_cases.append(Case(f"lm-eval hf-audiolm-qwen (patched), batch {args.gen_batch}",
                              gen(lmeval, args.gen_batch), args.clips))
        gen_cases[1].extra["vs_lmeval"] = gen_cases[2].name
    logger.info("ASR generation: %d clips, %d new tokens max", args.clips, args.max_gen_toks)
    measure(gen_cases, args.reps, device=args.device)

    rows = []
    for section, cases in (("spoken-MMLU loglikelihood (items = questions)", ll_cases), ("ASR generation", gen_cases)):
        names = {c.name: c for c in cases}
        for c in cases:
            refs = [r for r in (c.baseline, c.extra.get("vs_lmeval")) if r]
            ratio = ", ".join(f"{names[r].median_s / c.median_s:.2f}x vs {r}" for r in refs) or "(baseline)"
            rows.append([section, c.name, f"{c.items_per_s:.2f}", f"{c.median_s:.2f}",
                         fmt_mib(max(c.peak_bytes)), ratio])
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    ours_ll = ll_cases[0].output[0]
    checks = {
        "encoder_calls_per_item": ll_cases[0].output[1] / args.items,
        "transcripts_identical_b1_vs_batch": sum(a == b for a, b in zip(gen_cases[0].output, gen_cases[1].output)),
        "max_abs_diff_vs_naive": (float(np.abs(np.array([s for s, _ in ours_ll])
                                                - np.array([s for s, _ in ll_cases[2].output[0]])).max())
                                  if not args.no_naive else None),
    }
    print(f"Device: {device_name}; torch {torch.__version__}; random {args.dims} Qwen2-Audio "
          f"({n_params / 1e9:.2f} B parameters) in {args.dtype}, built in {build_s:.1f} s; "
          f"{args.reps} alternating repetitions after a warm-up, medians; peak memory = peak allocated "
          f"(weights included) on GPU, RSS growth on CPU.")
    print(f"Spoken-MMLU: {args.items} synthetic clips of {args.mc_seconds} s, batch {args.ll_batch}; ASR: "
          f"{args.clips} clips of {args.asr_seconds} s, greedy, {args.max_gen_toks} new tokens max.\n")
    print(table(rows, ["workload", "configuration", "items/s", "median s", "peak MiB", "ratio"]))
    print(f"\nChecks: audio-encoder calls per item {checks['encoder_calls_per_item']:g}; transcripts at batch "
          f"{args.gen_batch} identical to batch 1: {checks['transcripts_identical_b1_vs_batch']}/{args.clips}; "
          f"letter logprobs ours vs naive max |diff|: {checks['max_abs_diff_vs_naive']}")
    if args.json:
        args.json.write_text(json.dumps({
            "device": device_name, "dims": args.dims, "dtype": args.dtype, "params": n_params,
            "cases": [{"name": c.name, "median_s": c.median_s, "items_per_s": c.items_per_s, "seconds": c.seconds,
                       "peak_bytes": c.peak_bytes} for c in ll_cases + gen_cases],
            "checks": checks,
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
