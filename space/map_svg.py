"""An offline map of predicted places as inline SVG (no tiles, no CDN: it renders without network access).

Equirectangular projection with its standard parallel at the centre of the view (so that a country looks like
itself), zoomed to the predictions' bounding box. GeoNames cities are drawn as faint dots: where people live is
a good enough coastline for a map of places where people post. Longitudes are not wrapped across the
antimeridian: predictions on both sides of it give a view spanning the world.
"""

import html
import math

import numpy as np

# Colour-blind-safe palette (Okabe & Ito); posts beyond its length reuse colours.
POST_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
# Candidate graticule spacings in degrees; the smallest giving at most ~8 lines across the view is used.
_GRATICULE_STEPS = (0.25, 0.5, 1, 2, 5, 10, 15, 30, 45, 60)
# Background and gallery dots are thinned to one per cell of this many pixels, which bounds the SVG's size.
_DOT_CELL_PX = 3.0
# Approximate advance of one character of a 12 px bold label, to keep labels from overlapping.
_LABEL_CHAR_PX = 7.0


def _text(value) -> str:
    """Escape for SVG text/attributes; braces and dollars too, since gr.HTML fills a JS/Handlebars template."""
    return html.escape(str(value), quote=True).replace("{", "&#123;").replace("}", "&#125;").replace("$", "&#36;")


def map_viewport(latlon, width, height, padding_fraction=0.15, min_span_degrees=4.0):
    """(lat_min, lat_max, lon_min, lon_max) around `latlon` (N, 2), padded, with the canvas's aspect ratio.

    The longitude span is stretched by 1 / cos(centre latitude) so that the projected view fills the canvas.
    The view is kept inside the world; an empty `latlon` gives the whole world.
    """
    latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    if latlon.shape[0] == 0:
        return -90.0, 90.0, -180.0, 180.0
    lat_low, lon_low = latlon.min(axis=0)
    lat_high, lon_high = latlon.max(axis=0)
    lat_centre, lon_centre = (lat_low + lat_high) / 2.0, (lon_low + lon_high) / 2.0
    x_scale = max(math.cos(math.radians(lat_centre)), 0.2)
    lat_span = max(lat_high - lat_low, min_span_degrees) * (1.0 + 2.0 * padding_fraction)
    lon_span = max(lon_high - lon_low, min_span_degrees) * (1.0 + 2.0 * padding_fraction)
    # Grow whichever side is short so that (lon_span * x_scale) / lat_span == width / height.
    if lon_span * x_scale / lat_span < width / height:
        lon_span = lat_span * (width / height) / x_scale
    else:
        lat_span = lon_span * x_scale * (height / width)
    lat_span, lon_span = min(lat_span, 180.0), min(lon_span, 360.0)
    lat_min = min(max(lat_centre - lat_span / 2.0, -90.0), 90.0 - lat_span)
    lon_min = min(max(lon_centre - lon_span / 2.0, -180.0), 180.0 - lon_span)
    return lat_min, lat_min + lat_span, lon_min, lon_min + lon_span


def _project(latlon, viewport, width, height):
    """Pixel coordinates (N, 2) [x, y] of `latlon` (N, 2) in the viewport."""
    lat_min, lat_max, lon_min, lon_max = viewport
    latlon = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
    x = (latlon[:, 1] - lon_min) / (lon_max - lon_min) * width
    y = (lat_max - latlon[:, 0]) / (lat_max - lat_min) * height
    return np.stack([x, y], axis=1)


def _dots_path(latlon, viewport, width, height):
    """One SVG path of round dots (zero-length segments) for the points inside the view, one per pixel cell."""
    if latlon is None or len(latlon) == 0:
        return ""
    points = _project(latlon, viewport, width, height)
    inside = (points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)
    points = points[inside]
    if points.shape[0] == 0:
        return ""
    _, first = np.unique(np.floor(points / _DOT_CELL_PX).astype(np.int64), axis=0, return_index=True)
    return "".join(f"M{x:.1f} {y:.1f}h0" for x, y in points[np.sort(first)])


def _graticule(viewport, width, height):
    lat_min, lat_max, lon_min, lon_max = viewport
    step = next((s for s in _GRATICULE_STEPS if max(lat_max - lat_min, lon_max - lon_min) / s <= 8), 90)
    lines, labels = [], []
    for longitude in np.arange(math.ceil(lon_min / step) * step, lon_max, step):
        x = (longitude - lon_min) / (lon_max - lon_min) * width
        lines.append(f"M{x:.1f} 0V{height}")
        if x > width - 32:  # no room for the label
            continue
        hemisphere = "E" if longitude >= 0 else "W"
        labels.append(f'<text x="{x + 3:.1f}" y="{height - 4}">{abs(longitude):g}°{hemisphere}</text>')
    for latitude in np.arange(math.ceil(lat_min / step) * step, lat_max, step):
        y = (lat_max - latitude) / (lat_max - lat_min) * height
        lines.append(f"M0 {y:.1f}H{width}")
        labels.append(f'<text x="3" y="{y - 3:.1f}">{abs(latitude):g}°{"N" if latitude >= 0 else "S"}</text>')
    return (
        f'<path class="graticule" d="{"".join(lines)}" stroke="#c9d6e0" stroke-width="0.6" fill="none"/>'
        f'<g class="graticule-labels" font-size="10" fill="#7d8d99">{"".join(labels)}</g>'
    )


def marker_radius(score) -> float:
    """Marker radius in pixels: area grows with the score (a probability in [0, 1])."""
    return 3.0 + 12.0 * math.sqrt(min(max(float(score), 0.0), 1.0))


def render_map_svg(predictions, gallery_latlon=None, background_latlon=None, width=760, height=440):
    """An SVG map of predictions.

    Args:
        predictions: one list per post of `{"name", "latitude", "longitude", "score"}`, best first (the output of
            `model.geolocate`). Each post gets a colour; markers are sized by score; each post's best place is
            labelled where the label does not overlap another (every marker has a tooltip).
        gallery_latlon: (C, 2) [latitude, longitude] of the candidate places, drawn as small dots.
        background_latlon: (M, 2) points drawn as faint dots (GeoNames cities stand in for the land).
        width, height: canvas size in pixels (the SVG scales to its container's width).

    Returns:
        The `<svg>` element as a string.
    """
    predicted = [
        (post, rank, place)
        for post, places in enumerate(predictions)
        for rank, place in enumerate(places, start=1)
    ]
    viewport = map_viewport([(place["latitude"], place["longitude"]) for _, _, place in predicted], width, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="contrastgeo-map" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="Map of the predicted places" '
        f'style="display:block;margin:auto;max-width:{width}px;font-family:system-ui,sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#f2f6f9"/>',
        _graticule(viewport, width, height),
    ]
    land = _dots_path(background_latlon, viewport, width, height)
    if land:
        parts.append(f'<path class="land" d="{land}" stroke="#7f8e9a" stroke-opacity="0.55" stroke-width="2.2" '
                     'stroke-linecap="round" fill="none"/>')
    gallery = _dots_path(gallery_latlon, viewport, width, height)
    if gallery:
        parts.append(f'<path class="gallery" d="{gallery}" stroke="#35424d" stroke-opacity="0.7" stroke-width="3.2" '
                     'stroke-linecap="round" fill="none"/>')
    # Best (largest) first: smaller markers drawn later stay visible on top of larger ones.
    markers, labels, label_boxes = [], [], []
    for post, rank, place in sorted(predicted, key=lambda item: -item[2]["score"]):
        x, y = _project([(place["latitude"], place["longitude"])], viewport, width, height)[0]
        colour = POST_COLOURS[post % len(POST_COLOURS)]
        tooltip = f"post {post + 1}, #{rank}: {place['name']} (score {place['score']:.3f})"
        markers.append(
            f'<circle class="prediction" data-post="{post + 1}" data-rank="{rank}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="{marker_radius(place["score"]):.1f}" fill="{colour}" fill-opacity="0.55" stroke="{colour}" '
            f'stroke-width="1.5"><title>{_text(tooltip)}</title></circle>'
        )
        if rank == 1:
            label = _label(place["name"], x, y, marker_radius(place["score"]), colour, width, label_boxes)
            if label:
                labels.append(label)
    parts.append(f'<g class="predictions">{"".join(markers)}</g>')
    parts.append('<g class="labels" font-size="12" font-weight="600" stroke="#ffffff" stroke-width="3" '
                 f'paint-order="stroke">{"".join(labels)}</g>')
    parts.append(_legend(len(predictions)))
    parts.append("</svg>")
    return "".join(parts)


def _label(name, x, y, radius, colour, width, placed_boxes):
    """A text label beside a marker, or None where it would overlap a label already placed (`placed_boxes`)."""
    text_width = _LABEL_CHAR_PX * len(name)
    anchor_end = x + radius + 3 + text_width > width  # no room on the right: put it on the left
    left = x - radius - 3 - text_width if anchor_end else x + radius + 3
    box = (left, y - 9, left + text_width, y + 5)
    overlaps = (box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]
                for other in placed_boxes)
    if any(overlaps):
        return None
    placed_boxes.append(box)
    x_text, anchor = (box[2], "end") if anchor_end else (box[0], "start")
    return f'<text x="{x_text:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}" fill="{colour}">{_text(name)}</text>'


def _legend(num_posts):
    shown = min(num_posts, len(POST_COLOURS))
    entries = "".join(
        f'<circle cx="{14 + 62 * i}" cy="14" r="5" fill="{POST_COLOURS[i]}"/>'
        f'<text x="{22 + 62 * i}" y="18">post {i + 1}</text>'
        for i in range(shown)
    )
    more = f'<text x="{14 + 62 * shown}" y="18">…</text>' if num_posts > shown else ""
    backdrop_width = 62 * shown + (22 if num_posts > shown else 8)
    backdrop = f'<rect x="4" y="4" width="{backdrop_width}" height="20" rx="3" fill="#ffffff" fill-opacity="0.85"/>'
    return f'<g class="legend" font-size="11" fill="#33414c">{backdrop}{entries}{more}</g>'
