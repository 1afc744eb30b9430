"""The video benchmarks with known factors that a judge scores: Sprites and Moving shapes.

Each one's labels are one motion head, ``action``, and its content attributes (the judge's heads,
:data:`models.judge.BENCHMARK_HEADS`), plus the id of the content a sequence shows (``char_id``:
the Sprites character; ``content_id``: the Moving shapes content), which the swap test pairs across.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsae_cli.errors import DsaeError

#: the label that names a sequence's content, in the order looked for
GROUP_LABELS = ("content_id", "char_id")


@dataclass(frozen=True)
class Benchmark:
    name: str  # as in --data and `dsae evaluate NAME`
    title: str  # for people
    unit: str  # what its split is made of ("characters", "contents")

    def split(self, split: str, limit: int | None = None, frames: int | None = None):
        """The SequenceData of ``split`` (train, val or test), ``frames`` per sequence (None: the
        benchmark's 8; Sprites has only those)."""
        if self.name == "sprites":
            from dsae_cli.data.sprites import FRAMES, sprites_split

            if frames not in (None, FRAMES):
                raise DsaeError(f"Sprites sequences have {FRAMES} frames, not {frames}")
            return sprites_split(split, limit)
        from dsae_cli.data.shapes import FRAMES, shapes_split

        return shapes_split(split, limit, frames=frames or FRAMES)

    def class_names(self) -> dict[str, tuple[str, ...]]:
        """The names of every head's classes."""
        if self.name == "sprites":
            from dsae_cli.data import sprites

            return {"action": sprites.ACTION_NAMES, **{a: sprites.LOOKS[a] for a in ("skin", "pants", "top", "hair")}}
        from dsae_cli.data import shapes

        return {"action": shapes.DIRECTIONS, "shape": shapes.SHAPES, "colour": shapes.COLOURS, "background": shapes.BACKGROUNDS}


BENCHMARKS = {
    "sprites": Benchmark("sprites", "Sprites", "characters"),
    "shapes": Benchmark("shapes", "Moving shapes", "contents"),
}


def benchmark_named(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise DsaeError(f"unknown benchmark {name!r}; use {' or '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def benchmark_of(data) -> Benchmark | None:
    """The benchmark ``data`` (SequenceData) was drawn from, by its source (``"shapes:val"``), or None."""
    return BENCHMARKS.get(str(getattr(data, "source", "")).split(":")[0])


def group_labels(data):
    """The content id of every sequence (``content_id`` or ``char_id``), for pairing swaps across contents."""
    for key in GROUP_LABELS:
        if key in data.labels:
            return data.labels[key]
    raise DsaeError(f"the sequences have no {' or '.join(GROUP_LABELS)} labels to pair swaps across contents")
