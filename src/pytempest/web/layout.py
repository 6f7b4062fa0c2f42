"""Lay a pipeline graph out left to right, for the dashboard's SVG picture.

Each task goes in the column of its longest path from a root (so every edge points
right); inside a column, tasks are ordered by the mean row of their ancestors (a few
sweeps of the barycenter heuristic keep crossings low on the shapes pipelines have).
Edges are cubic curves from the right side of a box to the left side of the next, with
a point for their label. Pure function, no I/O: the browser only draws the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NODE_H = 46
MIN_NODE_W = 190
CHAR_W = 7.5
GAP_X = 90
GAP_Y = 26
PAD = 20
SWEEPS = 4


def _columns(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """The column of each task: its longest path from a task with no ancestor."""
    ancestors: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        if a in ancestors and b in ancestors:
            ancestors[b].append(a)
    column: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str]) -> int:
        if name in column:
            return column[name]
        if name in seen:  # a cycle cannot be built into a pipeline; never loop on bad data
            return 0
        ups = ancestors[name]
        value = 1 + max(depth(a, seen | {name}) for a in ups) if ups else 0
        column[name] = value
        return value

    for n in names:
        depth(n, frozenset())
    return column


def layout(names: Sequence[str], edges: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Positions of every task box and the path of every edge (see the module docstring).

    Returns ``{"width", "height", "nodes": [{"name", "x", "y", "w", "h", "column"}],
    "edges": [{"from", "to", "path", "label_x", "label_y"}]}``; nodes keep the order of
    ``names``, edges that of ``edges`` (edges naming an unknown task are left out).
    """
    pairs = [(str(e[0]), str(e[1])) for e in edges if len(e) == 2 and e[0] in names and e[1] in names]
    column = _columns(names, pairs)
    ncols = max(column.values(), default=-1) + 1
    cols: list[list[str]] = [[n for n in names if column[n] == c] for c in range(ncols)]
    ups: dict[str, list[str]] = {n: [a for a, b in pairs if b == n] for n in names}
    downs: dict[str, list[str]] = {n: [b for a, b in pairs if a == n] for n in names}
    row = {n: float(i) for col in cols for i, n in enumerate(col)}
    for sweep in range(SWEEPS):
        forward = sweep % 2 == 0
        for col in cols[1:] if forward else reversed(cols[:-1]):
            near = ups if forward else downs

            def key(n: str, near: dict[str, list[str]] = near) -> float:
                linked = near[n]
                return sum(row[x] for x in linked) / len(linked) if linked else row[n]

            col.sort(key=key)
            for i, n in enumerate(col):
                row[n] = float(i)
    width_of = {n: max(MIN_NODE_W, round(len(n) * CHAR_W + 36)) for n in names}
    col_w = [max((width_of[n] for n in col), default=MIN_NODE_W) for col in cols]
    tallest = max((len(col) for col in cols), default=0)
    height = PAD * 2 + tallest * NODE_H + max(0, tallest - 1) * GAP_Y
    pos: dict[str, dict[str, Any]] = {}
    x = PAD
    for c, col in enumerate(cols):
        col_h = len(col) * NODE_H + max(0, len(col) - 1) * GAP_Y
        y = (height - col_h) / 2
        for n in col:
            w = width_of[n]
            pos[n] = {
                "name": n,
                "x": x + (col_w[c] - w) / 2,
                "y": round(y, 1),
                "w": w,
                "h": NODE_H,
                "column": c,
            }
            y += NODE_H + GAP_Y
        x += col_w[c] + GAP_X
    width = max(PAD * 2, x - GAP_X + PAD)
    out_edges = []
    for a, b in pairs:
        pa, pb = pos[a], pos[b]
        x1, y1 = pa["x"] + pa["w"], pa["y"] + NODE_H / 2
        x2, y2 = pb["x"], pb["y"] + NODE_H / 2
        bend = max(30.0, (x2 - x1) / 2)
        path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        out_edges.append({"from": a, "to": b, "path": path,
                          "label_x": round((x1 + x2) / 2, 1), "label_y": round((y1 + y2) / 2 - 6, 1)})  # fmt: skip
    return {"width": width, "height": height, "nodes": [pos[n] for n in names], "edges": out_edges}
