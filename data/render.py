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
            self._track_of = self.road_poly
            # Grass then road, gymnasium's drawing order, in one array.
            road = np.array([poly for poly, _ in self.road_poly], np.float64).reshape(-1, 4, 2)
            self._verts = np.concatenate((grass_verts, road))
            self._road_colors = [color for _, color in self.road_poly]
            # The background colour exactly as gfxdraw maps it, for canvas.fill().
            probe = pygame.Surface((1, 1))
            gfxdraw.pixel(probe, 0, 0, self.bg_color)
            self._bg_mapped = probe.get_at((0, 0))
            if self._canvas is None:
                self._canvas = pygame.Surface((W, H))
                self._panel = pygame.Surface((W, H))
                self._shrunk = pygame.Surface((RED_SIZE, H))

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
        def _draw_polygons(self, verts, color_of, cos, sin, zoom, trans):
            """Draw, in order, the polygons gymnasium would draw that can touch
            the canvas; color_of(i) is the colour argument gymnasium passes."""
            px, py = _to_screen(verts, cos, sin, zoom, trans)
            m = cr.MAX_SHAPE_DIM
            near = ((px >= -m) & (px <= W + m) & (py >= -m) & (py <= H + m)).any(axis=1)
            touches = ((px.max(axis=1) >= -_MARGIN) & (px.min(axis=1) <= W + _MARGIN)
                       & (py.max(axis=1) >= -_MARGIN) & (py.min(axis=1) <= H + _MARGIN))
            idx = np.flatnonzero(near & touches)
            canvas = self._canvas
            for i, poly in zip(idx.tolist(), np.stack((px[idx], py[idx]), axis=-1).tolist()):
                color = color_of(i)
                gfxdraw.aapolygon(canvas, poly, color)
                gfxdraw.filled_polygon(canvas, poly, color)

        def _draw_background(self, cos, sin, zoom, trans):
            """The playfield square: one fill when it covers the whole canvas
            with a margin, else gymnasium's drawing on a black canvas."""
            b = cr.PLAYFIELD
            u = np.array([0.0, W, 0.0, W]) - trans[0]
            v = np.array([0.0, 0.0, H, H]) - trans[1]
            wx, wy = (cos * u + sin * v) / zoom, (cos * v - sin * u) / zoom  # canvas corners in the world
            if np.all(np.abs(wx) <= b - _MARGIN / zoom) and np.all(np.abs(wy) <= b - _MARGIN / zoom):
                self._canvas.fill(self._bg_mapped)
                return
            self._canvas.fill((0, 0, 0))
            field = np.array([(b, b), (b, -b), (-b, -b), (-b, b)], np.float64)
            px, py = _to_screen(field, cos, sin, zoom, trans)
            poly = np.stack((px, py), axis=-1).tolist()
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

            # The camera, computed as gymnasium does.
            angle = -self.car.hull.angle
            zoom = 0.1 * cr.SCALE * max(1 - self.t, 0) + cr.ZOOM * cr.SCALE * min(self.t, 1)
            scroll_x = -(self.car.hull.position[0]) * zoom
            scroll_y = -(self.car.hull.position[1]) * zoom
            trans = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
            trans = (W / 2 + trans[0], H / 4 + trans[1])
            cos, sin = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)

            canvas = self._canvas
            self._draw_background(cos, sin, zoom, trans)
            grass_color, road_colors, n_grass = self.grass_color, self._road_colors, len(grass_verts)
            self._draw_polygons(
                self._verts,
                lambda i: grass_color if i < n_grass else [int(c) for c in road_colors[i - n_grass]],
                cos, sin, zoom, trans)
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

    class ApproxCarRacing(ExactCarRacing):
        """CarRacing64 whose state frames are drawn with OpenCV at SUPERSAMPLE
        times the target resolution, then area-averaged: close to the
        reference's frames (see APPROX_BOUND), several times faster than "exact".

        It inherits ExactCarRacing only for its per-track arrays and score text."""

        SUPERSAMPLE = 4

        def _prepare_track(self):
            super()._prepare_track()
            self._grass_bgr = tuple(int(c) for c in self.grass_color)
            self._bg_rgb = tuple(int(c) for c in self.bg_color)
            # Car polygons in body coordinates: (body index, vertices, colour).
            car = self.car
            bodies = car.wheels + [car.hull]
            self._car_bodies = bodies
            self._car_polys = [(bodies.index(obj), np.array(f.shape.vertices, np.float64),
                                tuple(int(c * 255) for c in obj.color))
                               for obj in car.drawlist for f in obj.fixtures]
            ss = RED_SIZE * self.SUPERSAMPLE
            if getattr(self, "_ss_canvas", None) is None or self._ss_canvas.shape[0] != ss:
                self._ss_canvas = np.empty((ss, ss, 3), np.uint8)
                self._ss_texts = {}

        def _ss_points(self, px, py):
            """Canvas coordinates (pre-flip, 1000x800) -> fixed-point (4 fractional
            bits) pixel coordinates of the supersampled, flipped canvas, in
            OpenCV's convention (pixel centres at integers)."""
            kx = RED_SIZE * self.SUPERSAMPLE / W
            ky = RED_SIZE * self.SUPERSAMPLE / H
            x = px * kx - 0.5
            y = (H - py) * ky - 0.5
            return np.rint(np.stack((x, y), axis=-1) * 16).astype(np.int32)

        def _text_patch(self):
            """(y, x, patch): the score text, shrunk once per string to the
            supersampled canvas, and where it goes."""
            text = f"{self.reward:04.0f}"
            item = self._ss_texts.get(text)
            if item is None:
                surf = self._score_surface()
                rect = surf.get_rect()
                rect.center = (60, H - H * 2.5 / 40.0)
                kx = RED_SIZE * self.SUPERSAMPLE / W
                ky = RED_SIZE * self.SUPERSAMPLE / H
                x0, x1 = int(round(rect.left * kx)), int(round(rect.right * kx))
                y0, y1 = int(round(rect.top * ky)), int(round(rect.bottom * ky))
                rgb = np.ascontiguousarray(pygame.surfarray.array3d(surf).transpose(1, 0, 2))
                patch = cv2.resize(rgb, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
                if len(self._ss_texts) > 4096:
                    self._ss_texts.clear()
                item = self._ss_texts[text] = (y0, x0, patch)
            return item

        def _draw_panel(self, img):
            """The indicator panel: axis-aligned bars on black, and the score."""
            ss = self.SUPERSAMPLE
            kx, ky = RED_SIZE * ss / W, RED_SIZE * ss / H
            s, h = W / 40.0, H / 40.0
            img[int(round((H - 5 * h) * ky)):] = 0
            car = self.car
            v = car.hull.linearVelocity
            speed = float(np.sqrt(np.square(v[0]) + np.square(v[1])))
            w = car.wheels
            bars = [  # (value, x0, x1, y0, y1, colour), as gymnasium's _render_indicators
                (speed, 5 * s, 6 * s, H - (h + h * 0.02 * speed), H - h, (255, 255, 255)),
                (w[0].omega, 7 * s, 8 * s, H - (h + h * 0.01 * w[0].omega), H - h, (0, 0, 255)),
                (w[1].omega, 8 * s, 9 * s, H - (h + h * 0.01 * w[1].omega), H - h, (0, 0, 255)),
                (w[2].omega, 9 * s, 10 * s, H - (h + h * 0.01 * w[2].omega), H - h, (51, 0, 255)),
                (w[3].omega, 10 * s, 11 * s, H - (h + h * 0.01 * w[3].omega), H - h, (51, 0, 255)),
                (w[0].joint.angle, 20 * s, (20 - 10.0 * w[0].joint.angle) * s, H - 4 * h, H - 2 * h, (0, 255, 0)),
                (car.hull.angularVelocity, 30 * s, (30 - 0.8 * car.hull.angularVelocity) * s,
                 H - 4 * h, H - 2 * h, (255, 0, 0)),
            ]
            for value, x0, x1, y0, y1, color in bars:
                if abs(value) > 1e-4:
                    pts = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]) * (kx, ky) - 0.5
                    cv2.fillConvexPoly(img, np.rint(pts * 16).astype(np.int32), color, cv2.LINE_8, 4)
            y0, x0, patch = self._text_patch()
            y1, x1 = min(y0 + patch.shape[0], img.shape[0]), min(x0 + patch.shape[1], img.shape[1])
            img[max(y0, 0):y1, max(x0, 0):x1] = patch[max(-y0, 0):y1 - y0, max(-x0, 0):x1 - x0]

        def _car_polygons(self):
            """[(world vertices (k, 2), colour)] of the car, in gymnasium's order:
            each wheel and its white stripe, then the hull."""
            bodies = self._car_bodies
            out = []
            for b, local, color in self._car_polys:
                body = bodies[b]
                out.append((self._body_to_world(body, local), color))
                phase = getattr(body, "phase", None)
                if phase is None:
                    continue
                s1, s2 = math.sin(phase), math.sin(phase + 1.2)
                c1, c2 = math.cos(phase), math.cos(phase + 1.2)
                if s1 > 0 and s2 > 0:
                    continue
                if s1 > 0:
                    c1 = np.sign(c1)
                if s2 > 0:
                    c2 = np.sign(c2)
                ww, wr = cd.WHEEL_W * cd.SIZE, cd.WHEEL_R * cd.SIZE
                stripe = np.array([(-ww, wr * c1), (ww, wr * c1), (ww, wr * c2), (-ww, wr * c2)])
                out.append((self._body_to_world(body, stripe), cd.WHEEL_WHITE))
            return out

        @staticmethod
        def _body_to_world(body, local):
            a = body.angle
            c, s = math.cos(a), math.sin(a)
            x, y = body.position
            return np.stack((c * local[:, 0] - s * local[:, 1] + x, s * local[:, 0] + c * local[:, 1] + y), axis=-1)

        def _render(self, mode):
            if mode != "state_pixels" or "t" not in self.__dict__:
                return base._render(self, mode)
            if self.road_poly is not self._track_of:
                self._prepare_track()
            angle = -self.car.hull.angle
            zoom = 0.1 * cr.SCALE * max(1 - self.t, 0) + cr.ZOOM * cr.SCALE * min(self.t, 1)
            cos, sin = math.cos(angle), math.sin(angle)
            cx, cy = self.car.hull.position
            trans = (W / 2 - (cos * cx - sin * cy) * zoom, H / 4 - (sin * cx + cos * cy) * zoom)

            img = self._ss_canvas
            b = cr.PLAYFIELD
            u = np.array([0.0, W, 0.0, W]) - trans[0]
            v = np.array([0.0, 0.0, H, H]) - trans[1]
            wx, wy = (cos * u + sin * v) / zoom, (cos * v - sin * u) / zoom
            if np.all(np.abs(wx) <= b) and np.all(np.abs(wy) <= b):
                img[:] = self._bg_rgb
            else:
                img[:] = 0
                field = np.array([(b, b), (b, -b), (-b, -b), (-b, b)], np.float64)
                cv2.fillConvexPoly(img, self._ss_points(*_to_screen(field, cos, sin, zoom, trans)),
                                   self._bg_rgb, cv2.LINE_8, 4)

            px, py = _to_screen(self._verts, cos, sin, zoom, trans)
            visible = ((px.max(axis=1) >= 0) & (px.min(axis=1) <= W) & (py.max(axis=1) >= H / 8) & (py.min(axis=1) <= H))
            idx = np.flatnonzero(visible)
            pts = self._ss_points(px[idx], py[idx])
            n_grass, road_colors = len(grass_verts), self._road_colors
            for i, p in zip(idx.tolist(), pts):
                if i < n_grass:
                    color = self._grass_bgr
                else:
                    color = tuple(int(c) for c in road_colors[i - n_grass])
                cv2.fillConvexPoly(img, p, color, cv2.LINE_8, 4)
            for verts, color in self._car_polygons():
                cv2.fillConvexPoly(img, self._ss_points(*_to_screen(verts, cos, sin, zoom, trans)), color, cv2.LINE_8, 4)

            self._draw_panel(img)
            return cv2.resize(img, (RED_SIZE, RED_SIZE), interpolation=cv2.INTER_AREA)

    _CLASSES["reference"] = base
    _CLASSES["exact"] = ExactCarRacing
    _CLASSES["approx"] = ApproxCarRacing
