"""Speed and memory of voice conversion, in process: a 60-second and a 10-minute source.

Run:  python benchmarks/convert_voice.py [--model RUN_DIR] [--iterations N] [--render source-filter|envelope] [--json]

Sources are LibriSpeech test-other utterances concatenated (from the shared data folder beside the
checkout, ../shared/data/speech), or synthetic voices when that folder is absent; the target voice
is an utterance of another speaker. The model is loaded once beforehand (default: the embedded
speech model). For each source it reports the real-time factor (seconds of audio converted per
second of compute, reading and writing included; timed without tracing) and memory, in a second
run of the same conversion: the peak of Python/numpy allocations (tracemalloc; torch's own buffers are not traced but are bounded by the chunk
size), next to the size of the source audio itself (mono float32 at the model's rate), and the
process's peak resident size. Targets: at least 20x real time on 2 CPU cores, and working
memory that does not grow with the input's length beyond the audio itself.
"""

from __future__ import annotations

from machine import describe  # benchmarks/machine.py
import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "speech" / "librispeech_subset" / "test-other"


def build_inputs(folder: Path, seconds: list[float], sr: int = 16000) -> tuple[list[np.ndarray], np.ndarray, str]:
    """Sources of the given lengths and one target utterance (a different speaker)."""
    import soundfile as sf

    if folder.is_dir():
        from dsae_cli.data.speech import scan_corpus

        utts = scan_corpus(folder)
        target_speaker = utts[-1].speaker
        target = sf.read(utts[-1].path, dtype="float32")[0]
        pool = [u.path for u in utts if u.speaker != target_speaker]
        need = int(max(seconds) * sr)
        parts, n = [], 0
        while n < need:  # cycle through the utterances if the folder holds less than needed
            for p in pool:
                y = sf.read(p, dtype="float32")[0]
                parts.append(y)
                n += len(y)
                if n >= need:
                    break
        audio = np.concatenate(parts)
        return [audio[: int(s * sr)].copy() for s in seconds], target, f"LibriSpeech test-other ({folder})"
    sys.path.insert(0, str(ROOT / "tests"))
    from test_speech import voice

    rng = np.random.default_rng(0)
    pieces = [voice(float(rng.uniform(100, 220)), float(rng.uniform(0.9, 1.15)), 3.0, seed=i) for i in range(int(max(seconds) / 3) + 1)]
    audio = np.concatenate(pieces)
    return [audio[: int(s * sr)].copy() for s in seconds], voice(200.0, 1.1, 4.0, seed=999), "synthetic voices"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="speech checkpoint (default: the embedded model)")
    ap.add_argument("--iterations", type=int, default=None, help="Griffin-Lim iterations (default: convert-voice's)")
    ap.add_argument("--render", default="source-filter", help="convert-voice --render: source-filter or envelope")
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0, 600.0], help="source lengths")
    ap.add_argument("--data", type=Path, default=SHARED, help="LibriSpeech-style folder to build the sources from")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()

    import soundfile as sf
    import torch

    from dsae_cli.runtime import load_model_for
    from dsae_cli.voice import convert_voice

    model = load_model_for(args.model, "speech", "cpu")
    sources, target, origin = build_inputs(args.data, args.seconds)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tgt_path = Path(tmp) / "target.wav"
        sf.write(tgt_path, target, 16000)
        paths = []
        for s, y in zip(args.seconds, sources):
            paths.append(Path(tmp) / f"source_{int(s)}s.wav")
            sf.write(paths[-1], y, 16000)
        del sources
        if args.iterations is None:
            from dsae_cli.voice import DEFAULT_ITERATIONS

            args.iterations = DEFAULT_ITERATIONS[args.render]
        convert_voice(model, paths[0], [tgt_path], Path(tmp) / "warmup.wav", iterations=2, render=args.render)  # first-call costs
        for s, src in zip(args.seconds, paths):
            # timed and traced separately: tracemalloc slows every allocation it records
            start = time.perf_counter()
            res = convert_voice(model, src, [tgt_path], Path(tmp) / "out.wav", iterations=args.iterations, render=args.render)
            wall = time.perf_counter() - start
            tracemalloc.start()
            convert_voice(model, src, [tgt_path], Path(tmp) / "out.wav", iterations=args.iterations, render=args.render)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            audio_mb = res.seconds * 16000 * 4 / 1e6
            results.append({
                "seconds": round(res.seconds, 1),
                "compute_s": round(wall, 2),
                "realtime_factor": round(res.seconds / wall, 1),
                "audio_mb": round(audio_mb, 1),
                "traced_peak_mb": round(peak / 1e6, 1),
                "beyond_audio_mb": round(peak / 1e6 - audio_mb, 1),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            })  # fmt: skip
    out = {
        "machine": describe(),
        "inputs": origin,
        "model_id": getattr(model, "model_id", None),
        "iterations": args.iterations,
        "render": args.render,
        "torch_threads": torch.get_num_threads(),
        "runs": results,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"convert-voice --render {args.render}, {origin}, {args.iterations} Griffin-Lim iterations, {torch.get_num_threads()} torch threads")
    for r in results:
        print(
            f"  {r['seconds']:7.1f} s source: {r['compute_s']:6.2f} s compute, {r['realtime_factor']:5.1f}x real time (target >= 20x); "
            f"peak traced memory {r['traced_peak_mb']:.1f} MB for {r['audio_mb']:.1f} MB of audio "
            f"({r['beyond_audio_mb']:+.1f} MB beyond it); process peak RSS {r['max_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
