"""The Moving shapes data set (dsae_cli/data/shapes.py): deterministic rendering, motion in the labelled
direction, and splits by content."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsae_cli.data import shapes as sh
from dsae_cli.data.sequences import held_out_groups


def test_render_sequence_is_deterministic():
    a = sh.render_sequence(2, 3, 5, 1, seed=17)
    assert a.shape == (sh.FRAMES, sh.SIZE, sh.SIZE, 3) and a.dtype == np.uint8
    assert np.array_equal(a, sh.render_sequence(2, 3, 5, 1, seed=17))
    assert not np.array_equal(a, sh.render_sequence(2, 3, 5, 1, seed=18))
    assert sh.render_sequence(0, 0, 0, 0, seed=3, frames=16).shape[0] == 16


def _centroids(x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(T, 2) x, y centroid of the pixels that differ from the background, per frame."""
    out = []
    for frame in x:
        ys, xs = np.nonzero(np.abs(frame.astype(int) - background.astype(int)).max(-1) > 0)
        assert len(xs) > 20  # the figure is in frame
        out.append((xs.mean(), ys.mean()))
    return np.asarray(out)


@pytest.mark.parametrize("direction", range(len(sh.DIRECTIONS)))
def test_the_figure_moves_in_the_labelled_direction(direction):
    angle = direction * math.pi / 4
    sx, sy = round(math.cos(angle)), round(math.sin(angle))  # signs of the motion in x and in -y (y grows down)
    for background in range(len(sh.BACKGROUNDS)):  # every background, plain and textured
        seed = 100 * direction + background
        shape, colour = background % len(sh.SHAPES), (background + direction) % len(sh.COLOURS)
        x = sh.render_sequence(shape, colour, background, direction, seed)
        # the frame without the figure: the background is the first thing drawn from the sequence's seed
        bg = np.round(255 * sh._background(background, np.random.RandomState(seed))).astype(np.uint8)
        steps = np.diff(_centroids(x, bg), axis=0)  # (T - 1, 2): frame-to-frame motion
        for step_x, step_y in steps:
            for sign, d in ((sx, step_x), (sy, -step_y)):
                if sign == 0:
                    assert abs(d) < 0.75, (direction, background, steps)
                else:
                    assert np.sign(d) == sign and abs(d) > 1.0, (direction, background, steps)


def test_labelled_sequences_move_in_their_action_direction():
    """End to end through shapes_split: the figure (found by its labelled colour) moves the labelled way."""
    data = sh.shapes_split("test", limit=64)
    assert len(data) == 64 and data.x.shape[1:] == (sh.FRAMES, sh.SIZE, sh.SIZE, 3)
    for i in range(0, 64, 3):
        target = sh.FIGURE_RGB[data.labels["colour"][i]] * 255
        angle = int(data.labels["action"][i]) * math.pi / 4
        sx, sy = round(math.cos(angle)), round(math.sin(angle))
        cents = []
        for frame in data.x[i].astype(float):
            ys, xs = np.nonzero(np.abs(frame - target).max(-1) < 0.12 * 255)
            cents.append((xs.mean(), ys.mean()))
        dx, dy = np.asarray(cents[-1]) - np.asarray(cents[0])
        for sign, d in ((sx, dx), (sy, -dy)):
            assert (abs(d) < 2.0) if sign == 0 else (np.sign(d) == sign and abs(d) > 8), (i, dx, dy)


def test_splits_are_disjoint_by_content_and_val_is_held_out_of_train():
    train_ids, test_ids = sh.split_content_ids()
    assert len(train_ids) == sh.N_CONTENTS - sh.N_TEST_CONTENTS and len(test_ids) == sh.N_TEST_CONTENTS
    assert not set(train_ids) & set(test_ids) and set(train_ids) | set(test_ids) == set(range(sh.N_CONTENTS))
    val = sh.shapes_split("val")
    val_ids = set(np.unique(val.labels["content_id"]).tolist())
    assert val_ids == set(held_out_groups(train_ids).tolist()) and val_ids < set(train_ids.tolist())
    assert len(val) == len(val_ids) * len(sh.DIRECTIONS) * sh.REPEATS
    test = sh.shapes_split("test", limit=40)
    train = sh.shapes_split("train", limit=40)
    assert set(test.labels["content_id"].tolist()) <= set(test_ids.tolist())
    assert set(train.labels["content_id"].tolist()) <= set(train_ids.tolist())
    # the labels agree with the content id, and every head has its classes
    for d in (val, test, train):
        cid = d.labels["content_id"]
        assert np.array_equal(d.groups, cid)
        assert np.array_equal(36 * d.labels["shape"] + 6 * d.labels["colour"] + d.labels["background"], cid)
    assert sorted(np.unique(val.labels["action"]).tolist()) == list(range(len(sh.DIRECTIONS)))
