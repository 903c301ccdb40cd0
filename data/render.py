"""Fast renderers for CarRacing-v3's 64x64 state frames.

Why: gymnasium's CarRacing spends ~97% of a step drawing. Each step it
transforms all ~800 road and grass polygons in Python, draws the ones near the
screen on a 1000x800 pygame canvas, flips it, draws the indicators and the
score, and smooth-scales the canvas to the state size. Physics alone runs
~70x faster than that. Three renderers, chosen by make_env(renderer=...):

"reference"  gymnasium's own drawing (the class CarRacing64 of data/carracing.py).

"exact"      frames byte-identical to "reference" at every step (the tests
             check this over whole episodes), 2-3x faster. The same pygame
             calls on the same float coordinates, less of the work around them:
             - all polygon vertices are transformed at once with NumPy, in the
               same floating-point operations as pygame's Vector2.rotate_rad, so
               every coordinate handed to pygame is bit-for-bit the reference's;
               gymnasium's own off-screen test selects the polygons, and of those
               only the ones whose bounding box comes within a few pixels of the
               canvas are drawn (the others change no pixel);
             - the green background is one fill of the canvas when the playfield
               polygon covers it with a margin (the reference fills it pixel for
               pixel with the same colour), else it is drawn the reference's way;
             - no full-canvas flip: smoothscale shrinks X first, row by row, into
               a (64, 800) buffer, then Y. So the canvas is X-shrunk, and the
               small buffer is flipped, which is the same as shrinking the flipped
               canvas;
             - the bottom 100 rows of the flipped canvas are entirely covered by
               the black indicator panel, so the panel (indicators + score) is
               drawn on a surface of its own and X-shrunk on its own; the road's
               hidden rows are not shrunk. When an indicator bar grows above the
               panel (a wheel spinning over ~400 rad/s) the frame is made the
               reference's way, from a flipped copy of the canvas;
             - one Font object, and the score's text surface cached per string
               (the reference loads the font file and renders the text each step).
             Physics, the car's drawing and the indicator drawing are gymnasium's
             own code, unchanged.

"approx"     draws straight at 4x the target resolution with OpenCV
             (cv2.fillConvexPoly with sub-pixel vertices, on a 256x256 canvas)
             and area-averages down to 64x64 (cv2.resize INTER_AREA): the same
             model as the reference (aliased fill at high resolution, then a box
             filter), without the 1000x800 canvas. The score text is the
             reference's glyphs, shrunk once per distinct score string and cached.
             Deviation from "exact", measured over seeded episodes with
             tests/test_render.py's policy (see APPROX_BOUND): APPROX_DEVIATION.
"""
import math
import os

import numpy as np

from utils.constants import RED_SIZE

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

RENDERERS = ("reference", "exact", "approx")

# Pixels of slack around the canvas when deciding that a polygon changes no
# pixel: gfxdraw truncates coordinates to integers and its anti-aliased outline
# touches at most one pixel beside the ideal line, so 4 is more than enough.
_MARGIN = 4.0

_CLASSES = {}


def renderer_class(renderer):
    """The env class (a CarRacing-v3 subclass with 64x64 frames) for a renderer name."""
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {RENDERERS}, not {renderer!r}")
    if not _CLASSES:
        _build_classes()
    return _CLASSES[renderer]


def _grass_vertices(grass_dim):
    """(400, 4, 2) float64: gymnasium's grass patches, built with its very
    expressions so that the floats are the same."""
    grass = []
    for x in range(-20, 20, 2):
        for y in range(-20, 20, 2):
            grass.append([
                (grass_dim * x + grass_dim, grass_dim * y + 0),
                (grass_dim * x + 0, grass_dim * y + 0),
                (grass_dim * x + 0, grass_dim * y + grass_dim),
                (grass_dim * x + grass_dim, grass_dim * y + grass_dim),
            ])
    return np.array(grass, np.float64)


def _to_screen(verts, cos, sin, zoom, trans):
    """(..., 2) world vertices -> x, y canvas coordinates (each (...)).

    The same float64 operations, in the same order, as gymnasium's
    `Vector2(c).rotate_rad(angle)` followed by `c * zoom + translation`: with
    (cos, sin) taken from pygame's own rotation of (1, 0), the results are
    bit-for-bit equal (checked by tests/test_render.py)."""
    x, y = verts[..., 0], verts[..., 1]
    return (cos * x - sin * y) * zoom + trans[0], (sin * x + cos * y) * zoom + trans[1]


def _miters(verts):
    """(K, n, 2) convex polygons -> (K, n, 2) vertex offsets that push every
    edge outwards by one unit (the miter of the two edges at each vertex)."""
    e_in = verts - np.roll(verts, 1, axis=1)
    e_out = np.roll(verts, -1, axis=1) - verts
    x, y = verts[..., 0], verts[..., 1]
    ccw = np.sign((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))[:, None, None]

    def normal(e):  # outward unit normal of an edge of a counter-clockwise polygon
        n = np.stack((e[..., 1], -e[..., 0]), axis=-1) * ccw
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)

    n_in, n_out = normal(e_in), normal(e_out)
    return (n_in + n_out) / np.maximum(1.0 + (n_in * n_out).sum(axis=-1, keepdims=True), 0.1)


def _smoothscale_lut(pygame, width, height):
    """(256,) uint8: what pygame's smoothscale from (width, height) to
    RED_SIZE x RED_SIZE makes of a uniform image of each value. Its fixed-point
    weights sum to a little less than one, so flat colours come out ~2 levels
    darker (102 -> 100); the approx renderer applies the same loss."""
    rows = pygame.Surface((width, 256))  # row v holds the value v
    pygame.surfarray.pixels3d(rows)[:] = np.arange(256, dtype=np.uint8)[None, :, None]
    after_x = pygame.surfarray.array3d(pygame.transform.smoothscale(rows, (RED_SIZE, 256)))[RED_SIZE // 2, :, 0]
    cols = pygame.Surface((256, height))  # column u holds after_x[u]
    pygame.surfarray.pixels3d(cols)[:] = after_x.astype(np.uint8)[:, None, None]
    return pygame.surfarray.array3d(pygame.transform.smoothscale(cols, (256, RED_SIZE)))[:, RED_SIZE // 2, 0].copy()


def _build_classes():
    """Define the renderer classes; gymnasium, pygame and cv2 are imported here,
    on first use, not when this module is imported."""
    import cv2
    import pygame
    from pygame import gfxdraw
    from gymnasium.envs.box2d import car_dynamics as cd
    from gymnasium.envs.box2d import car_racing as cr

    from data.carracing import _car_racing_class

    base = _car_racing_class()
    W, H = cr.WINDOW_W, cr.WINDOW_H
    PANEL = int(H - 5 * (H / 40.0))  # first row of the indicator panel (700)
    grass_verts = _grass_vertices(cr.GRASS_DIM)
    # Farthest a canvas point (plus margin) lies from the car's screen position
    # (W/2, H/4), in pixels: a polygon whose centre is farther than this plus its
    # own radius cannot touch the canvas.
    reach = 1.01 * math.hypot(W / 2 + _MARGIN, H * 3 / 4 + _MARGIN)

    class ExactCarRacing(base):
        """CarRacing64 whose state frames are byte-identical to the reference's,
        drawn with less work (see the module docstring)."""

        _font = None
        _texts = {}  # score string -> its rendered surface, shared by all envs

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._canvas = None
            self._track_of = None

        # --- per-track data, rebuilt when reset() makes a new track ---------
        def _prepare_track(self):
            """Vertex arrays of the polygons gymnasium draws, in its order:
            grass, then road tiles and kerbs; their centres and radii."""
            self._track_of = self.road_poly
            road = np.array([poly for poly, _ in self.road_poly], np.float64).reshape(-1, 4, 2)
            self._verts = np.concatenate((grass_verts, road))
            self._centres = self._verts.mean(axis=1)
            self._radii = np.sqrt(np.square(self._verts - self._centres[:, None]).sum(axis=-1)).max(axis=1)
            self._road_colors = [color for _, color in self.road_poly]
            # The background colour exactly as gfxdraw maps it, for canvas.fill().
            probe = pygame.Surface((1, 1))
            gfxdraw.pixel(probe, 0, 0, self.bg_color)
            self._bg_mapped = probe.get_at((0, 0))
            if self._canvas is None:
                self._canvas = pygame.Surface((W, H))
                self._panel = pygame.Surface((W, H))
                self._shrunk = pygame.Surface((RED_SIZE, H))

        def _camera(self):
            """(angle, zoom, trans, cos, sin), computed as gymnasium's _render does."""
            angle = -self.car.hull.angle
            zoom = 0.1 * cr.SCALE * max(1 - self.t, 0) + cr.ZOOM * cr.SCALE * min(self.t, 1)
            scroll_x = -(self.car.hull.position[0]) * zoom
            scroll_y = -(self.car.hull.position[1]) * zoom
            trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
            trans = (W / 2 + trans[0], H / 4 + trans[1])
            cos, sin = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
            return angle, zoom, trans, cos, sin

        def _candidates(self, zoom):
            """Indices (ascending) of the polygons that may touch the canvas,
            from their centres' distance to the car: a cheap first cut."""
            x, y = self.car.hull.position
            d2 = np.square(self._centres[:, 0] - x) + np.square(self._centres[:, 1] - y)
            return np.flatnonzero(d2 <= np.square(reach / zoom + self._radii))

        def _score_surface(self):
            text = f"{self.reward:04.0f}"
            surf = self._texts.get(text)
            if surf is None:
                if ExactCarRacing._font is None or not pygame.font.get_init():
                    pygame.font.init()  # again after a pygame.quit(), which drops fonts
                    ExactCarRacing._font = pygame.font.Font(pygame.font.get_default_font(), 42)
                if len(self._texts) > 4096:
                    self._texts.clear()
                surf = self._texts[text] = ExactCarRacing._font.render(text, True, (255, 255, 255), (0, 0, 0))
            return surf

        # --- drawing ---------------------------------------------------------
        def _draw_track(self, cos, sin, zoom, trans):
            """Draw, in gymnasium's order and way, the grass and road polygons it
            would draw (its own off-screen test) that can touch the canvas."""
            idx = self._candidates(zoom)
            px, py = _to_screen(self._verts[idx], cos, sin, zoom, trans)
            m = cr.MAX_SHAPE_DIM
            near = ((px >= -m) & (px <= W + m) & (py >= -m) & (py <= H + m)).any(axis=1)
            touches = ((px.max(axis=1) >= -_MARGIN) & (px.min(axis=1) <= W + _MARGIN)
                       & (py.max(axis=1) >= -_MARGIN) & (py.min(axis=1) <= H + _MARGIN))
            keep = np.flatnonzero(near & touches)
            canvas, grass_color, road_colors, n_grass = self._canvas, self.grass_color, self._road_colors, len(grass_verts)
            for i, poly in zip(idx[keep].tolist(), np.stack((px[keep], py[keep]), axis=-1).tolist()):
                color = grass_color if i < n_grass else [int(c) for c in road_colors[i - n_grass]]
                gfxdraw.aapolygon(canvas, poly, color)
                gfxdraw.filled_polygon(canvas, poly, color)

        def _field_covers(self, cos, sin, zoom, trans, margin):
            """True when the playfield square covers the whole canvas, `margin`
            pixels inside its edges (plain floats: four points)."""
            lim = cr.PLAYFIELD - margin / zoom
            for u, v in ((0.0, 0.0), (W, 0.0), (0.0, H), (W, H)):  # canvas corners, to the world
                u, v = u - trans[0], v - trans[1]
                if abs(cos * u + sin * v) / zoom > lim or abs(cos * v - sin * u) / zoom > lim:
                    return False
            return True

        def _draw_background(self, cos, sin, zoom, trans):
            """The playfield square: one fill when it covers the whole canvas
            with a margin, else gymnasium's drawing on a black canvas."""
            if self._field_covers(cos, sin, zoom, trans, _MARGIN):
                self._canvas.fill(self._bg_mapped)
                return
            self._canvas.fill((0, 0, 0))
            b = cr.PLAYFIELD
            field = np.array([(b, b), (b, -b), (-b, -b), (-b, b)], np.float64)
            poly = np.stack(_to_screen(field, cos, sin, zoom, trans), axis=-1).tolist()
            gfxdraw.aapolygon(self._canvas, poly, self.bg_color)
            gfxdraw.filled_polygon(self._canvas, poly, self.bg_color)

        def _panel_fits(self):
            """True when every indicator bar stays inside the bottom panel rows."""
            h = H / 40.0
            car = self.car
            v = car.hull.linearVelocity
            vals = [0.02 * np.sqrt(np.square(v[0]) + np.square(v[1]))] + [0.01 * w.omega for w in car.wheels]
            return H - (h + h * max(vals)) >= PANEL

        def _render(self, mode):
            if mode != "state_pixels" or "t" not in self.__dict__:
                return super()._render(mode)
            if self.road_poly is not self._track_of:
                self._prepare_track()
            angle, zoom, trans, cos, sin = self._camera()
            canvas = self._canvas
            self._draw_background(cos, sin, zoom, trans)
            self._draw_track(cos, sin, zoom, trans)
            self.car.draw(canvas, zoom, trans, angle, False)

            text = self._score_surface()
            text_rect = text.get_rect()
            text_rect.center = (60, H - H * 2.5 / 40.0)
            if not self._panel_fits():
                # An indicator reaches into the road: gymnasium's way, flip and all.
                self.surf = pygame.transform.flip(canvas, False, True)
                self._render_indicators(W, H)
                self.surf.blit(text, text_rect)
                return self._create_image_array(self.surf, (cr.STATE_W, cr.STATE_H))

            # Shrink X (row by row) the visible road rows, flip the small result,
            # and stack the separately drawn panel under it; then shrink Y.
            shrunk = self._shrunk
            road = pygame.transform.smoothscale(canvas.subsurface((0, H - PANEL, W, PANEL)), (RED_SIZE, PANEL))
            shrunk.blit(pygame.transform.flip(road, False, True), (0, 0))
            self.surf = self._panel
            self._render_indicators(W, H)  # starts with a black box over rows PANEL..H
            self.surf.blit(text, text_rect)
            panel = pygame.transform.smoothscale(self._panel.subsurface((0, PANEL, W, H - PANEL)), (RED_SIZE, H - PANEL))
            shrunk.blit(panel, (0, PANEL))
            return self._create_image_array(shrunk, (cr.STATE_W, cr.STATE_H))

    lut = _smoothscale_lut(pygame, W, H)
    # The final frame's bottom rows and left columns that hold the score and
    # nothing else: the panel's rows, and the columns left of the first bar
    # (at x = 5 * W / 40).
    TEXT_ROWS = RED_SIZE * (H - PANEL) // H
    TEXT_COLS = int(5 * (W / 40.0) * RED_SIZE / W)
    _text_blocks = {}  # score string -> its (TEXT_ROWS, TEXT_COLS, 3) block

    class ApproxCarRacing(ExactCarRacing):
        """CarRacing64 whose state frames are drawn with OpenCV at SUPERSAMPLE
        times the target resolution, then area-averaged: close to the
        reference's frames (APPROX_BOUND), ~10x faster than it.

        It inherits ExactCarRacing for its per-track arrays, camera, culling
        and score text; coordinates go through the same transform, then to the
        supersampled, flipped canvas."""

        SUPERSAMPLE = 4
        # gymnasium's polygons cover every pixel from floor(min) to floor(max)
        # (plus an anti-aliased outline): on average half a pixel more on each
        # side than the ideal polygon. The approx polygons grow by as much.
        DILATE = 0.5

        def _prepare_track(self):
            super()._prepare_track()
            self._miter = _miters(self._verts)
            n_grass = len(grass_verts)
            # One (N, 3) colour table for all polygons. The road tiles' colour
            # arrays, which gymnasium's contact listener repaints in place when a
            # wheel touches a tile, become rows of it: the table stays current at
            # no cost. (The values are unchanged, so is every other renderer.)
            colors = np.empty((len(self._verts), 3), np.float64)
            colors[:n_grass] = self.grass_color
            tiles = {id(t.color): t for t in self.road}
            for k, (poly, color) in enumerate(self.road_poly):
                colors[n_grass + k] = color
                tile = tiles.get(id(color))
                if tile is not None:
                    tile.color = colors[n_grass + k]
                    self.road_poly[k] = (poly, tile.color)
            self._road_colors = [color for _, color in self.road_poly]
            self._colors = colors
            ss = RED_SIZE * self.SUPERSAMPLE
            self._ss = ss
            self._kx, self._ky = ss / W, ss / H
            self._panel_row = int(round(PANEL * self._ky))
            self._bg_img = np.empty((ss, ss, 3), np.uint8)
            self._bg_img[:] = [int(c) for c in self.bg_color]
            self._img = np.empty_like(self._bg_img)
            # The car: its polygons in body coordinates, gymnasium's colours.
            car = self.car
            self._bodies = car.wheels + [car.hull]
            local, miter, body, sizes, self._car_colors = [], [], [], [], []
            for obj in car.drawlist:
                for f in obj.fixtures:
                    verts = np.array(f.shape.vertices, np.float64)
                    local.append(verts)
                    miter.append(_miters(verts[None])[0])
                    body += [self._bodies.index(obj)] * len(verts)
                    sizes.append(len(verts))
                    self._car_colors.append(tuple(int(c * 255) for c in obj.color))
            self._car_local, self._car_miter = np.concatenate(local), np.concatenate(miter)
            self._car_body = np.array(body)
            self._car_splits = np.cumsum(sizes)[:-1]

        def _fixed(self, px, py):
            """Canvas coordinates (pre-flip, 1000x800) -> int32 fixed-point (4
            fractional bits) coordinates on the supersampled, flipped canvas,
            in OpenCV's convention (pixel centres on integers)."""
            x = px * self._kx - 0.5
            y = (H - py) * self._ky - 0.5
            return np.rint(np.stack((x, y), axis=-1) * 16).astype(np.int32)

        def _fill(self, img, pts, color):
            cv2.fillConvexPoly(img, pts, color, cv2.LINE_8, 4)

        def _draw_track(self, img, cos, sin, zoom, trans):
            idx = self._candidates(zoom)
            verts = self._verts[idx] + (self.DILATE / zoom) * self._miter[idx]
            px, py = _to_screen(verts, cos, sin, zoom, trans)
            visible = ((px.max(axis=1) >= 0) & (px.min(axis=1) <= W)
                       & (py.max(axis=1) >= H - PANEL) & (py.min(axis=1) <= H))
            keep = np.flatnonzero(visible)
            idx, pts = idx[keep], self._fixed(px[keep], py[keep])
            n_grass = np.searchsorted(idx, len(grass_verts))
            if n_grass:  # grass patches never overlap: one call for them all
                cv2.fillPoly(img, list(pts[:n_grass]), [int(c) for c in self.grass_color], cv2.LINE_8, 4)
            for p, color in zip(pts[n_grass:], self._colors[idx[n_grass:]].astype(np.int64).tolist()):
                self._fill(img, p, color)

        def _draw_car(self, img, cos, sin, zoom, trans):
            """The car as gymnasium draws it: wheels with their white stripe, hull."""
            bodies = self._bodies
            grow = self.DILATE / zoom  # in world units
            local, body = [self._car_local + grow * self._car_miter], [self._car_body]
            ww, wr = cd.WHEEL_W * cd.SIZE + grow, cd.WHEEL_R * cd.SIZE
            for k, w in enumerate(bodies[:-1]):  # each wheel's white stripe, as gymnasium computes it
                s1, s2 = math.sin(w.phase), math.sin(w.phase + 1.2)
                if s1 > 0 and s2 > 0:
                    continue
                c1 = math.copysign(1.0, math.cos(w.phase)) if s1 > 0 else math.cos(w.phase)
                c2 = math.copysign(1.0, math.cos(w.phase + 1.2)) if s2 > 0 else math.cos(w.phase + 1.2)
                g = math.copysign(grow, c1 - c2)
                y1, y2 = wr * c1 + g, wr * c2 - g
                local.append(np.array([(-ww, y1), (ww, y1), (ww, y2), (-ww, y2)]))
                body.append(np.full(4, k))
            local, body = np.concatenate(local), np.concatenate(body)
            # Body frame -> screen: rotate by the body's angle plus the camera's,
            # scale, and add the body origin's screen position.
            origin = np.array([tuple(b.position) for b in bodies])
            ox, oy = _to_screen(origin, cos, sin, zoom, trans)
            a = np.array([b.angle for b in bodies])[body] - self.car.hull.angle
            ca, sa = np.cos(a) * zoom, np.sin(a) * zoom
            pts = self._fixed(ox[body] + ca * local[:, 0] - sa * local[:, 1],
                              oy[body] + sa * local[:, 0] + ca * local[:, 1])
            # Gymnasium draws each stripe right after its wheel; the wheels do not
            # overlap, so all wheels, then all stripes, then the hull is the same picture.
            n_static = len(self._car_local)
            static = np.split(pts[:n_static], self._car_splits)
            n_wheels = len(bodies) - 1
            for p, color in zip(static[:n_wheels], self._car_colors[:n_wheels]):
                self._fill(img, p, color)
            for j in range(n_static, len(pts), 4):
                self._fill(img, pts[j:j + 4], cd.WHEEL_WHITE)
            for p, color in zip(static[n_wheels:], self._car_colors[n_wheels:]):
                self._fill(img, p, color)

        def _text_block(self):
            """(8, TEXT_COLS, 3) uint8: the bottom-left corner of the final
            frame, which holds the score and nothing else, made by the
            reference's own pipeline once per score string (then cached)."""
            text = f"{self.reward:04.0f}"
            block = _text_blocks.get(text)
            if block is None:
                surf = self._score_surface()
                rect = surf.get_rect()
                rect.center = (60, H - H * 2.5 / 40.0)
                panel = pygame.Surface((W, H - PANEL))  # black, as gymnasium's box
                panel.blit(surf, rect.move(0, -PANEL))
                column = pygame.Surface((RED_SIZE, H))
                column.blit(pygame.transform.smoothscale(panel, (RED_SIZE, H - PANEL)), (0, PANEL))
                frame = pygame.surfarray.array3d(pygame.transform.smoothscale(column, (RED_SIZE, RED_SIZE)))
                block = frame.transpose(1, 0, 2)[RED_SIZE - TEXT_ROWS:, :TEXT_COLS].copy()
                if len(_text_blocks) > 4096:
                    _text_blocks.clear()
                _text_blocks[text] = block
            return block

        # gymnasium's indicator bars: place (in units of W/40), value multiplier,
        # vertical (or horizontal), colour; their values are read in _draw_panel.
        _BAR_PLACE = np.array([5, 7, 8, 9, 10, 20, 30], np.float64)
        _BAR_GAIN = np.array([0.02, 0.01, 0.01, 0.01, 0.01, -10.0, -0.8])
        _BAR_VERTICAL = np.array([True] * 5 + [False] * 2)
        _BAR_COLORS = [(255, 255, 255), (0, 0, 255), (0, 0, 255), (51, 0, 255), (51, 0, 255), (0, 255, 0), (255, 0, 0)]

        def _draw_panel(self, img):
            """The indicator panel: gymnasium's bars (axis-aligned) on black, and the score."""
            img[self._panel_row:] = 0
            s, h = W / 40.0, H / 40.0
            car = self.car
            v = car.hull.linearVelocity
            w = car.wheels
            values = [math.sqrt(v[0] * v[0] + v[1] * v[1]), w[0].omega, w[1].omega, w[2].omega, w[3].omega,
                      w[0].joint.angle, car.hull.angularVelocity]
            val = self._BAR_GAIN * values
            place, vert = self._BAR_PLACE, self._BAR_VERTICAL
            x0, x1 = place * s, np.where(vert, place + 1, place + val) * s
            y0, y1 = np.where(vert, H - (h + h * val), H - 4 * h), np.where(vert, H - h, H - 2 * h)
            # pygame fills the pixels floor(min) .. floor(max) of an axis-aligned box.
            x0, x1 = np.floor(np.minimum(x0, x1)), np.floor(np.maximum(x0, x1)) + 1
            y0, y1 = np.floor(np.minimum(y0, y1)), np.floor(np.maximum(y0, y1)) + 1
            quads = np.stack((np.stack((x0, y0), -1), np.stack((x1, y0), -1),
                              np.stack((x1, y1), -1), np.stack((x0, y1), -1)), axis=1)  # (7, 4, 2)
            pts = np.rint((quads * (self._kx, self._ky) - 0.5) * 16).astype(np.int32)
            for value, p, color in zip(values, pts, self._BAR_COLORS):
                if abs(value) > 1e-4:
                    self._fill(img, p, color)

        def _render(self, mode):
            if mode != "state_pixels" or "t" not in self.__dict__:
                return base._render(self, mode)
            if self.road_poly is not self._track_of:
                self._prepare_track()
            angle, zoom, trans, cos, sin = self._camera()
            img = self._img
            if self._field_covers(cos, sin, zoom, trans, 0.0):
                np.copyto(img, self._bg_img)
            else:
                img[:] = 0
                b = cr.PLAYFIELD
                field = np.array([(b, b), (b, -b), (-b, -b), (-b, b)], np.float64)
                self._fill(img, self._fixed(*_to_screen(field, cos, sin, zoom, trans)), self._bg_img[0, 0].tolist())
            self._draw_track(img, cos, sin, zoom, trans)
            self._draw_car(img, cos, sin, zoom, trans)
            self._draw_panel(img)
            small = img
            while small.shape[0] > RED_SIZE:  # halvings: OpenCV's fast 2x area path
                small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
            out = cv2.LUT(small, lut)
            out[RED_SIZE - TEXT_ROWS:, :TEXT_COLS] = self._text_block()
            return out

    _CLASSES["reference"] = base
    _CLASSES["exact"] = ExactCarRacing
    _CLASSES["approx"] = ApproxCarRacing
