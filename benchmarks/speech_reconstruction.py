"""How well a speech model reconstructs unseen speech: encode and decode every segment of every tenth
utterance of a corpus folder, and print the mean squared error of the normalised log-spectrum (the
model's own features, per-bin standardised, so 1.0 is the error of predicting each bin's mean).

Run:  python benchmarks/speech_reconstruction.py [--model RUN/best] [--data DIR] [--every 10]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from dsae_cli.io.audio import read_audio
from dsae_cli.runtime import load_model_for
from dsae_cli.data.speech import scan_corpus
from dsae_cli.voice import SpeechCodec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a speech model (default: the embedded one)")
    ap.add_argument("--data", default="../shared/data/speech/librispeech_subset/test-other")
    ap.add_argument("--every", type=int, default=10, help="use every N-th utterance")
    args = ap.parse_args()
    codec = SpeechCodec.of(load_model_for(args.model, "speech", "cpu"), "cpu")
    errors = []
    utts = scan_corpus(args.data)[:: args.every]
    for u in utts:
        segs = codec.utterance_segments(read_audio(u.path, codec.spec))
        f, z = codec.encode(segs)
        errors.append(((codec.decode(f, z) - segs) ** 2).mean(axis=(1, 2)))
    err = np.concatenate(errors)
    print(json.dumps({"data": args.data, "model": args.model or "embedded", "utterances": len(utts), "segments": int(len(err)), "mse": round(float(err.mean()), 4)}))


if __name__ == "__main__":
    main()
