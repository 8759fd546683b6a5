"""Placing ``α=…`` labels beside points of an α path on a laid-out axes, where each label
stays inside the axes and covers no marker, no other label and, if it can, no path point."""

from __future__ import annotations

from typing import Sequence

#: Where an α label may go, tried in order: offset (points) from its point and alignment.
_LABEL_PLACES = (((4, 3), "left", "bottom"), ((4, -3), "left", "top"), ((-4, 3), "right", "bottom"),
                 ((-4, -3), "right", "top"), ((0, 6), "center", "bottom"), ((0, -6), "center", "top"),
                 ((7, 0), "left", "center"), ((-7, 0), "right", "center"))


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_alphas(ax, points: list[tuple[float, float, float]], markers: Sequence[tuple[float, float, float]] = (),
                  path: Sequence[tuple[float, float]] = (), fontsize: float = 6.0, obstacles: Sequence = ()) -> list:
    """Write ``α=…`` beside ``(alpha, x, y)`` points, in order, where it fits.

    Each label tries the places of :data:`_LABEL_PLACES` in turn and takes the first that
    lies inside the axes and overlaps no marker of ``markers`` (``(x, y, half size in pt)``),
    no artist of ``obstacles`` (e.g. a value box), no label already written and no point of the α ``path``; failing the last condition
    everywhere, the first place clear of markers and labels; failing that, the label is
    left out. Call it on a laid-out figure: overlap is judged on the rendered text extents.
    Returns the annotations written.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pixels = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    frame = (frame.x0 + 0.5, frame.y0 + 0.5, frame.x1 - 0.5, frame.y1 - 0.5)

    def boxes(items, half_of):
        out = []
        for item in items:
            cx, cy = ax.transData.transform(item[:2])
            half = half_of(item) * pixels
            out.append((cx - half, cy - half, cx + half, cy + half))
        return out

    hard = boxes(markers, lambda item: item[2])
    hard += [tuple(artist.get_window_extent(renderer).extents) for artist in obstacles]
    soft = boxes(path, lambda item: 1.8)
    written, seen = [], set()
    for alpha, x, y in points:
        if round(alpha, 9) in seen:
            continue
        seen.add(round(alpha, 9))
        text, chosen, fallback = f"α={alpha + 0.0:g}", None, None
        for offset, ha, va in _LABEL_PLACES:
            note = ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va,
                               fontsize=fontsize, color="0.15", zorder=7, annotation_clip=False)
            extent = note.get_window_extent(renderer)
            box = (extent.x0, extent.y0, extent.x1, extent.y1)
            inside = box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] and box[3] <= frame[3]
            if inside and not any(_overlaps(box, other) for other in hard):
                if not any(_overlaps(box, other) for other in soft):
                    chosen = (note, box)
                    break
                if fallback is None:
                    fallback = (note, box)
                    continue
            note.remove()
        if chosen is None:
            chosen = fallback
        elif fallback is not None:
            fallback[0].remove()
        if chosen is not None:
            chosen[0].set_in_layout(False)
            hard.append(chosen[1])
            written.append(chosen[0])
    return written
