"""Fast renderers for CarRacing-v3's 64x64 state frames.

Why: gymnasium's CarRacing spends ~97% of a step drawing. Each step it
transforms all ~800 grass and road polygons in Python, draws the ones near the
screen on a 1000x800 pygame canvas, flips it, draws the indicators and the
score (loading the font file again), and smooth-scales the canvas to the state
size. Its physics alone run many times faster than that. Three renderers, chosen by
make_env(renderer=...); physics are gymnasium's in all three:

"reference"  gymnasium's own drawing (CarRacing64 below: gymnasium's class with
             64x64 frames).

"exact"      frames byte-identical to "reference" at every step, several times
             faster (tests/test_render.py compares whole episodes frame by frame). It
             makes the same pygame drawing calls with the same float
             coordinates, and cuts the work around them:
             - all polygons are transformed at once with NumPy, with the very
               floating-point operations of pygame's Vector2.rotate_rad, so each
               coordinate handed to pygame is bit-for-bit gymnasium's; its own
               off-screen test picks the polygons, and of those only the ones
               that come within 4 pixels of the canvas are drawn (the others
               change no pixel). A cut on polygon centres comes first;
             - the green background is one fill when the playfield square covers
               the whole canvas (gymnasium fills it pixel for pixel in the same
               colour), else it is drawn gymnasium's way;
             - no full-canvas flip: smoothscale shrinks X first, row by row, into
               a (64, 800) buffer, then Y; so the canvas is X-shrunk and that
               small buffer flipped, which gives the same bytes;
             - the black indicator panel covers the bottom 100 rows of the
               flipped canvas, so the panel (bars + score) is drawn apart and
               X-shrunk apart, and the road's hidden rows are not shrunk. When a
               bar grows above the panel (a wheel spinning over ~400 rad/s) the
               frame is made gymnasium's way, from a flipped canvas;
             - one Font, and the score's text surface cached per string.
             The car and the indicator bars are drawn by gymnasium's own code.

"approx"     OpenCV, an order of magnitude faster than "reference" per core: the same model as
             gymnasium's (polygons filled at a high resolution, then a box
             filter), without the 1000x800 canvas. The road view is filled at
             4x4 samples per frame pixel (cv2.fillConvexPoly with sub-pixel
             vertices), the car, small and always at the same place, at 16x16,
             then both are area-averaged (cv2.resize INTER_AREA); the indicator
             bars are painted by the exact share of each pixel they cover; the
             score's corner of the frame is made by gymnasium's pygame calls
             once per score string; a lookup table applies the ~2-level loss of
             pygame's fixed-point smoothscale (102 -> 100).
             Deviation from "exact" over tests/test_render.py's 3 episodes of
             1000 steps (track following, then off the track), values 0..255:
             mean |diff| 0.20, worst frame's mean 0.75, max 71 (an edge pixel),
             pixels differing at all 10%, by more than 8 levels 1.8%. Over 5
             Brownian episodes: mean 0.16, max 78, 9.4%, 1.2%. APPROX_BOUND
             holds the bounds the tests enforce.
             Envs stepped together (data.carracing.step_envs, as a worker of
             the rollout pool steps its envs) have their frames drawn together
             (render_frames): each env still fills its own polygons, but the
             shrinking, the car's compositing, the bars and the colour mapping
             are one NumPy/OpenCV call for all, whose fixed cost per call is
             most of a frame's at this size. The bytes are those of each env
             drawn alone (tests/test_render.py), and envs stepped together
             step faster than one at a time.

Speed: bench/bench_render.py (one env per process) and bench/bench_rollout.py
(envs stepped together) print each renderer's env steps/s and its ratio to
"reference" on the machine they run on; docs/performance/ holds their records.

This module imports gymnasium, pygame and OpenCV when it is imported: data/carracing.make_env imports it
on first use, not the modules that import data/carracing.py.
"""
import functools
import math
import os
from contextlib import contextmanager

import numpy as np

from utils.constants import RED_SIZE

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a banner on import
import cv2  # noqa: E402
import pygame  # noqa: E402
from gymnasium import spaces  # noqa: E402
from gymnasium.envs.box2d import car_dynamics as cd  # noqa: E402
from gymnasium.envs.box2d import car_racing as cr  # noqa: E402
from pygame import gfxdraw  # noqa: E402

RENDERERS = ("reference", "exact", "approx")

# Pixels of slack around the canvas when deciding that a polygon changes no
# pixel: gfxdraw truncates coordinates to integers and its anti-aliased outline
# touches at most one pixel beside the ideal line, so 4 is more than enough.
_MARGIN = 4.0

# How far the approx frames may be from the exact ones, over whole episodes
# (values in 0..255; the measured figures are in the module docstring).
# tests/test_render.py checks them.
APPROX_BOUND = {
    "mean_abs": 0.4,  # mean |approx - exact| over all values of all frames
    "max_abs": 128,  # the largest difference of any value (an edge pixel)
    "worst_frame_mean_abs": 1.5,  # the mean of the worst frame
    "share_differing": 0.15,  # share of pixels that differ at all
    "share_over_8": 0.03,  # share of pixels off by more than 8 levels
}

# --- The geometry of gymnasium's canvas and of the 64x64 frame, in one place -------------------------------
W, H = cr.WINDOW_W, cr.WINDOW_H  # gymnasium's canvas (1000 x 800)
PANEL = int(H - 5 * (H / 40.0))  # first row of the indicator panel (700)
N_GRASS = len(range(-20, 20, 2)) ** 2  # gymnasium's grass patches, the first polygons it draws (400)
# Farthest a canvas point (plus margin) lies from the car's screen position (W/2, H/4), in pixels: a polygon
# whose centre is farther than this plus its own radius cannot touch the canvas.
REACH = 1.01 * math.hypot(W / 2 + _MARGIN, H * 3 / 4 + _MARGIN)
# The final frame's bottom rows and left columns that hold the score and nothing else: the panel's rows, and
# the columns left of the first bar (at x = 5 * W / 40).
TEXT_ROWS = RED_SIZE * (H - PANEL) // H
TEXT_COLS = int(5 * (W / 40.0) * RED_SIZE / W)
# The frame pixels around the car (whose hull is always at the screen point (W/2, H/4) before the flip, frame
# pixel (32, 48)): its ~4x7 pixels and a margin, drawn CAR_SUPERSAMPLE times finer than the rest.
CAR_ROWS, CAR_COLS = (RED_SIZE * 3 // 4 - 5, RED_SIZE * 3 // 4 + 5), (RED_SIZE // 2 - 3, RED_SIZE // 2 + 3)
SUPERSAMPLE, CAR_SUPERSAMPLE = 4, 16  # the approx renderer's samples per frame pixel and axis: road, car
# gymnasium's indicator bars, in _render_indicators' order: place (in units of W/40), gain on the value,
# vertical (or horizontal), colour. Their values (see _bar_boxes): the speed, the four wheels' angular
# speeds, the steering angle, the hull's angular speed.
BARS = ((5, 0.02, True, (255, 255, 255)), (7, 0.01, True, (0, 0, 255)), (8, 0.01, True, (0, 0, 255)),
        (9, 0.01, True, (51, 0, 255)), (10, 0.01, True, (51, 0, 255)),
        (20, -10.0, False, (0, 255, 0)), (30, -0.8, False, (255, 0, 0)))
BAR_COLORS = np.array([color for *_, color in BARS], np.float64)
BAR_S, BAR_H = W / 40.0, H / 40.0  # gymnasium's units for the bars
PIXELS = np.arange(RED_SIZE)  # frame rows or columns
# The car's stripe rows in _car_local (rows 8k+4 .. 8k+7 for wheel k) and, for each, which of the wheel's two
# stripe ends (c1, c2) gives its y.
STRIPE_ROWS = (8 * np.arange(4)[:, None] + np.arange(4, 8)).ravel()
STRIPE_ENDS = (2 * np.arange(4)[:, None] + np.array([0, 0, 1, 1])).ravel()
for _constant in (BAR_COLORS, PIXELS, STRIPE_ROWS, STRIPE_ENDS):
    _constant.flags.writeable = False


@functools.cache
def grass_vertices(grass_dim=cr.GRASS_DIM):
    """(N_GRASS, 4, 2) float64: gymnasium's grass patches, built with its very
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
    grass = np.array(grass, np.float64)
    grass.flags.writeable = False  # shared by every env
    return grass


def _to_screen(verts, cos, sin, zoom, trans):
    """(..., 2) world vertices -> x, y canvas coordinates (each (...)).

    The same float64 operations, in the same order, as gymnasium's
    `Vector2(c).rotate_rad(angle)` followed by `c * zoom + translation`: with
    (cos, sin) taken from pygame's own rotation of (1, 0), the results are
    bit-for-bit equal (checked by tests/test_render.py)."""
    x, y = verts[..., 0], verts[..., 1]
    return (cos * x - sin * y) * zoom + trans[0], (sin * x + cos * y) * zoom + trans[1]


@functools.cache
def smoothscale_lut(width=W, height=H):
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


class CarRacing64(cr.CarRacing):
    """CarRacing-v3 whose observation is the state frame smooth-scaled to
    RED_SIZE x RED_SIZE instead of 96x96: the same drawing, a smaller image."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.observation_space = spaces.Box(0, 255, (RED_SIZE, RED_SIZE, 3), np.uint8)

    def _create_image_array(self, screen, size):
        if size == (cr.STATE_W, cr.STATE_H):
            size = (RED_SIZE, RED_SIZE)
        return super()._create_image_array(screen, size)


class ExactCarRacing(CarRacing64):
    """CarRacing64 whose state frames are byte-identical to the reference's,
    drawn with less work (see the module docstring)."""

    _font = None
    _texts = {}  # score string -> its rendered surface, shared by all envs
    _n_grass = N_GRASS  # the first polygons are grass patches

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._canvas = None
        self._track_of = None

    # --- per-track data, rebuilt when reset() makes a new track ---------
    def _prepare_polygons(self):
        """Vertex arrays of the polygons gymnasium draws, in its order:
        grass, then road tiles and kerbs; their centres and radii."""
        self._track_of = self.road_poly
        road = np.array([poly for poly, _ in self.road_poly], np.float64).reshape(-1, 4, 2)
        self._verts = np.concatenate((grass_vertices(), road))
        self._centres = self._verts.mean(axis=1)
        self._radii = np.sqrt(np.square(self._verts - self._centres[:, None]).sum(axis=-1)).max(axis=1)
        self._road_colors = [color for _, color in self.road_poly]

    def _prepare_track(self):
        self._prepare_polygons()
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
        return np.flatnonzero(d2 <= np.square(REACH / zoom + self._radii))

    def _score_surface(self, text=None):
        """The score's text surface (text: the score string; default: the
        current reward's), cached per string."""
        text = f"{self.reward:04.0f}" if text is None else text
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
        canvas, grass_color, road_colors, n_grass = self._canvas, self.grass_color, self._road_colors, N_GRASS
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


class ApproxCarRacing(ExactCarRacing):
    """CarRacing64 whose state frames are drawn with OpenCV straight at
    SUPERSAMPLE times the target resolution, then area-averaged to 64x64:
    close to the reference's frames (see APPROX_BOUND), an order of magnitude faster.

    The model is the reference's own (polygons filled at a high resolution,
    then a box filter), without the 1000x800 canvas. It inherits
    ExactCarRacing for its per-track arrays, camera, culling and score text.
    """

    _later = False  # True while frames_later() holds this env's frame back
    _text_blocks = {}  # score string -> its (TEXT_ROWS, TEXT_COLS, 3) block, shared by all envs
    # The supersampled canvases and car patches of render_frames, one array each so that each shrinking is
    # one OpenCV call for all envs, and the car polygons of _car_points: for the largest batch so far; a
    # batch of n uses the first n.
    _buffers = {}

    # --- per-track data ---------------------------------------------------
    def _prepare_track(self):
        self._prepare_polygons()
        n_grass = self._n_grass
        # One (N, 3) colour table for all polygons. The road tiles' colour
        # arrays, which gymnasium's contact listener repaints in place when
        # the car touches a tile, become rows of it, so the table is always
        # current at no cost. (Same values: every renderer draws the same.)
        colors = np.empty((len(self._verts), 3), np.float64)
        colors[:n_grass] = self.grass_color
        tiles = {id(t.color): t for t in self.road}
        for k, (poly, color) in enumerate(self.road_poly):
            colors[n_grass + k] = color
            tile = tiles.get(id(color))  # None for a kerb
            if tile is not None:
                tile.color = colors[n_grass + k]
                self.road_poly[k] = (poly, tile.color)
        self._road_colors = [color for _, color in self.road_poly]
        self._colors = colors
        ss = RED_SIZE * SUPERSAMPLE
        self._ss, self._ss_rows = ss, ss * PANEL // H  # the canvas: the road view, above the panel
        self._bg_img = np.empty((self._ss_rows, ss, 3), np.uint8)
        self._bg_img[:] = [int(c) for c in self.bg_color]
        self._prepare_car()

    def _prepare_car(self):
        """The car's polygons in body coordinates, for _draw_car: each
        wheel followed by its white stripe (filled in each step), then the
        hull's four parts; rows [8k, 8k + 8) belong to wheel k."""
        car = self.car
        self._bodies = car.wheels + [car.hull]
        parts = []
        for w in car.wheels:
            stripe = np.zeros((4, 2))  # x: +-WHEEL_W; y moves with the wheel's phase (_car_points)
            stripe[:, 0] = np.array([-1, 1, 1, -1]) * cd.WHEEL_W * cd.SIZE
            parts += [np.array(w.fixtures[0].shape.vertices, np.float64), stripe]
        hull = [np.array(f.shape.vertices, np.float64) for f in car.hull.fixtures]
        self._car_local = np.concatenate(parts + hull)
        ends = np.cumsum([len(v) for v in hull]) + 32
        self._hull_slices = [slice(a, b) for a, b in zip([32, *ends[:-1]], ends)]
        self._wheel_color = [int(c * 255) for c in car.wheels[0].color]
        self._hull_color = [int(c * 255) for c in car.hull.color]

    # --- drawing ------------------------------------------------------------
    def _affine(self, cos, sin, zoom, trans, ss, row0=0, col0=0):
        """(2, 2) matrix and (2,) offset taking world points to fixed-point
        (4 fractional bits) points of a canvas with ss x ss pixels per frame
        pixel whose corner is the frame's pixel (row0, col0): gymnasium's
        camera, its vertical flip, the scaling, and OpenCV's convention of
        pixel centres on integers."""
        kx, ky = 16 * ss * RED_SIZE / W, 16 * ss * RED_SIZE / H
        m = np.array([[cos * zoom * kx, -sin * zoom * kx], [-sin * zoom * ky, -cos * zoom * ky]])
        return m, np.array([trans[0] * kx - 16 * ss * col0 - 8, (H - trans[1]) * ky - 16 * ss * row0 - 8])

    def _draw_track(self, img, m, b, zoom):
        """Grass patches, then road tiles and kerbs, in gymnasium's order,
        those near the car (OpenCV clips what lies off the canvas)."""
        idx = self._candidates(zoom)
        # Keep those whose bounding circle meets the canvas.
        centre = self._centres[idx] @ m.T + b
        reach = self._radii[idx] * (zoom * 16 * self._ss / min(W, H))  # in fixed-point pixels
        idx = idx[(centre[:, 0] >= -reach) & (centre[:, 0] <= 16 * self._ss + reach)
                  & (centre[:, 1] >= -reach) & (centre[:, 1] <= 16 * self._ss_rows + reach)]
        pts = np.rint(self._verts[idx] @ m.T + b).astype(np.int32)  # (K, 4, 2)
        for p, color in zip(pts, self._colors[idx].astype(np.int64).tolist()):
            cv2.fillConvexPoly(img, p, color, cv2.LINE_8, 4)

    @staticmethod
    def _car_points(envs, affines):
        """Fixed-point canvas points of each env's car polygons (rows as in
        _prepare_car), (N, rows, 2) int32, and for each env the first rows
        of the stripes gymnasium draws. affines: each env's (m, b)."""
        wr = cd.WHEEL_R * cd.SIZE
        angles, places, ends, stripes = [], [], [], []
        for env in envs:
            bodies, shown = env._bodies, []
            for k, wheel in enumerate(bodies[:4]):  # each wheel's stripe, from its phase, as gymnasium has it
                s1, s2 = math.sin(wheel.phase), math.sin(wheel.phase + 1.2)
                c1, c2 = math.cos(wheel.phase), math.cos(wheel.phase + 1.2)
                ends += (float(np.sign(c1)) if s1 > 0 else c1, float(np.sign(c2)) if s2 > 0 else c2)
                if not (s1 > 0 and s2 > 0):
                    shown.append(8 * k + 4)
            stripes.append(shown)
            angles += [body.angle for body in bodies]
            places += [(q.x, q.y) for q in (body.position for body in bodies)]
        n = len(envs)
        if len(ApproxCarRacing._buffers.get("car", ())) < n:  # every car has gymnasium's shape: one copy per env, kept
            ApproxCarRacing._buffers["car"] = np.repeat(envs[0]._car_local[None], n, axis=0)
        local = ApproxCarRacing._buffers["car"][:n]  # (N, rows, 2)
        # stripe rows 8k+4 .. 8k+7: (-ww, wr c1), (ww, wr c1), (ww, wr c2), (-ww, wr c2)
        local[:, STRIPE_ROWS, 1] = wr * np.array(ends).reshape(n, 8)[:, STRIPE_ENDS]
        # body -> world -> canvas: each body's rotation and position, then m, b
        angle = np.array(angles).reshape(n, 5)
        cos, sin = np.cos(angle), np.sin(angle)
        rot = np.empty((n, 5, 2, 2))
        rot[..., 0, 0] = rot[..., 1, 1] = cos
        rot[..., 1, 0], rot[..., 0, 1] = sin, -sin
        m = np.array([m for m, _ in affines])  # (N, 2, 2)
        b = np.array([b for _, b in affines])  # (N, 2)
        a = (m[:, None] @ rot).swapaxes(-1, -2)  # (N, 5, 2, 2): row vectors times a
        o = np.array(places).reshape(n, 5, 2) @ m.swapaxes(-1, -2) + b[:, None]  # (N, 5, 2)
        pts = np.empty_like(local)
        pts[:, :32] = (local[:, :32].reshape(n, 4, 8, 2) @ a[:, :4] + o[:, :4, None]).reshape(n, 32, 2)
        pts[:, 32:] = local[:, 32:] @ a[:, 4] + o[:, 4:]  # hull
        return np.rint(pts).astype(np.int32), stripes

    def _draw_car(self, img, pts, stripes):
        """The car as gymnasium draws it: the wheels, their white stripes,
        the hull. On a 4-channel image the 4th channel gets the coverage."""
        alpha = [255] if img.shape[2] == 4 else []
        # Gymnasium draws each stripe right after its wheel; wheels do not
        # overlap each other, so wheels, then stripes, is the same picture.
        cv2.fillPoly(img, [pts[8 * k:8 * k + 4] for k in range(4)], self._wheel_color + alpha, cv2.LINE_8, 4)
        if stripes:
            cv2.fillPoly(img, [pts[j:j + 4] for j in stripes], list(cd.WHEEL_WHITE) + alpha, cv2.LINE_8, 4)
        for rows in self._hull_slices:  # the hull's parts overlap: one call each
            cv2.fillConvexPoly(img, pts[rows], self._hull_color + alpha, cv2.LINE_8, 4)

    def _text_block(self):
        """(TEXT_ROWS, TEXT_COLS, 3) uint8: the bottom-left corner of the
        frame, which holds the score and nothing else (a 4-character score
        is ~100 px wide, centred at x = 60), made by the reference's own
        pygame calls once per score string (then cached). The corner's
        size is a whole number of frame pixels (125 x 100 of the 1000 x
        800 canvas), so shrinking it alone gives the same pixels as
        shrinking the whole canvas."""
        text = f"{self._score:04.0f}"
        block = self._text_blocks.get(text)
        if block is None:
            surf = self._score_surface(text)
            rect = surf.get_rect()
            rect.center = (60, H - H * 2.5 / 40.0)
            corner = pygame.Surface((W * TEXT_COLS // RED_SIZE, H - PANEL))  # black, as gymnasium's box
            corner.blit(surf, rect.move(0, -PANEL))
            block = pygame.surfarray.array3d(pygame.transform.smoothscale(corner, (TEXT_COLS, TEXT_ROWS)))
            block = np.ascontiguousarray(block.transpose(1, 0, 2))
            if len(self._text_blocks) > 4096:
                self._text_blocks.clear()
            self._text_blocks[text] = block
        return block

    @staticmethod
    def _bar_boxes(envs):
        """The indicator bars of each env, as gymnasium's _render_indicators
        draws them: (N, bars, 4) box edges x0, x1, y0, y1 in frame pixels
        (an empty box for a bar not drawn: its value is ~0), and the (top
        row, left column, right column) the drawn ones reach; None when no
        env draws any. pygame fills an axis-aligned box from pixel
        floor(min) to pixel floor(max); these are the same float operations,
        in plain Python (faster than NumPy on a few numbers)."""
        s, h, kx, ky = BAR_S, BAR_H, RED_SIZE / W, RED_SIZE / H
        boxes = []
        top, left, right = math.inf, math.inf, -math.inf
        for env in envs:
            car = env.car
            v, w = car.hull.linearVelocity, car.wheels
            values = (math.sqrt(v[0] * v[0] + v[1] * v[1]), w[0].omega, w[1].omega, w[2].omega, w[3].omega,
                      w[0].joint.angle, car.hull.angularVelocity)
            for value, (place, gain, vertical, _) in zip(values, BARS):
                if abs(value) <= 1e-4:
                    boxes.append((0.0, 0.0, 0.0, 0.0))
                    continue
                val = gain * value
                if vertical:
                    xa, xb, ya, yb = place * s, (place + 1) * s, H - (h + h * val), H - h
                else:
                    xa, xb, ya, yb = place * s, (place + val) * s, H - 4 * h, H - 2 * h
                box = (math.floor(min(xa, xb)) * kx, (math.floor(max(xa, xb)) + 1) * kx,
                       math.floor(min(ya, yb)) * ky, (math.floor(max(ya, yb)) + 1) * ky)
                boxes.append(box)
                top, left, right = min(top, box[2]), min(left, box[0]), max(right, box[1])
        if top == math.inf:
            return None
        reach = (math.floor(top), math.floor(left), math.ceil(right))
        return np.array(boxes).reshape(len(envs), len(BARS), 4), reach

    @staticmethod
    def _draw_bars(bars, frames, lo):
        """Paint the bars (_bar_boxes'), in gymnasium's order (a long gyro bar
        can cover the steering one), onto frames, (N, 64 - lo, 64, 3) float:
        the frames' rows from `lo` down; each bar by the exact share it
        covers of each pixel. All bars, drawn or not (an empty box covers
        nothing), so that an env's sums are the same alone and in a batch."""
        boxes, (top, left, right) = bars
        x0, x1, y0, y1 = boxes.transpose(2, 0, 1)
        # The rows and columns the bars reach: elsewhere nothing changes.
        r0 = max(lo, min(RED_SIZE - TEXT_ROWS, top))
        c0, c1 = max(0, left), min(RED_SIZE, right)
        cols, rows = PIXELS[c0:c1], PIXELS[r0:]
        cover_x = np.maximum(np.minimum(x1[..., None], cols + 1) - np.maximum(x0[..., None], cols), 0)
        cover_y = np.maximum(np.minimum(y1[..., None], rows + 1) - np.maximum(y0[..., None], rows), 0)
        cover = cover_y[..., None] * cover_x[:, :, None, :]  # (N, bars, rows, cols): share of each pixel
        # Paint them over one another in order: what shows of bar k is what
        # the bars after it leave uncovered; the frame shows through all.
        shown, through = np.empty_like(cover), np.ones((len(cover), *cover.shape[2:]))
        for k in range(cover.shape[1] - 1, -1, -1):
            shown[:, k] = cover[:, k] * through
            through *= 1 - cover[:, k]
        paint = BAR_COLORS.T @ shown.reshape(*shown.shape[:2], -1)  # (N, 3, rows * cols)
        paint = paint.reshape(len(paint), 3, len(rows), len(cols)).transpose(0, 2, 3, 1)
        frames[:, r0 - lo:, c0:c1] = frames[:, r0 - lo:, c0:c1] * through[..., None] + paint

    def _render(self, mode):
        if mode != "state_pixels" or "t" not in self.__dict__:
            return CarRacing64._render(self, mode)
        # The score shown is the reward now, before step() takes the step's
        # 0.1 off it, even when the frame is drawn later (step_envs).
        self._score = self.reward
        if self._later:
            return None  # drawn with the others of frames_later
        return self.render_frames([self])[0]

    @classmethod
    @contextmanager
    def frames_later(cls, envs):
        """The approx renderer's one batched call (data/carracing.step_envs steps its envs inside it): within
        the block, the frames of `envs` (ApproxCarRacing, unwrapped) are not drawn as they step (step()
        returns None for them); at its end they are drawn together (render_frames), each env's state is set
        to its frame, and the list the block was given holds them, in the order of envs."""
        frames = []
        for env in envs:
            env._later = True
        try:
            yield frames
        finally:
            for env in envs:
                env._later = False
        if envs:
            frames.extend(cls.render_frames(envs))
            for env, frame in zip(envs, frames):
                env.state = frame

    @staticmethod
    def render_frames(envs):
        """(N, 64, 64, 3) uint8: the state frames of N ApproxCarRacing envs,
        drawn together: the track and the car of each are filled (OpenCV, one
        call per polygon), then all canvases are shrunk, the cars composited,
        the bars painted and the colours mapped in one pass for all. Each
        frame is the one the env would render alone (tests/test_render.py)."""
        n = len(envs)
        buffers = ApproxCarRacing._buffers
        if len(buffers.get("canvases", ())) < n:
            ss = RED_SIZE * SUPERSAMPLE
            (r0, r1), (c0, c1) = CAR_ROWS, CAR_COLS
            buffers["canvases"] = np.empty((n, ss * PANEL // H, ss, 3), np.uint8)
            buffers["patches"] = np.empty((n, (r1 - r0) * CAR_SUPERSAMPLE, (c1 - c0) * CAR_SUPERSAMPLE, 4), np.uint8)
        canvases, patches = buffers["canvases"][:n], buffers["patches"][:n]
        (r0, r1), (c0, c1) = CAR_ROWS, CAR_COLS
        cameras, car_affines = [], []
        for env, img in zip(envs, canvases):
            if env.road_poly is not env._track_of:
                env._prepare_track()
            _, zoom, trans, cos, sin = camera = env._camera()
            cameras.append(camera)
            m, b = env._affine(cos, sin, zoom, trans, SUPERSAMPLE)
            if env._field_covers(cos, sin, zoom, trans, 0.0):
                np.copyto(img, env._bg_img)
            else:
                img[:] = 0
                p = cr.PLAYFIELD
                field = np.array([(p, p), (p, -p), (-p, -p), (-p, p)]) @ m.T + b
                cv2.fillConvexPoly(img, np.rint(field).astype(np.int32), env._bg_img[0, 0].tolist(), cv2.LINE_8, 4)
            env._draw_track(img, m, b, zoom)
            car_affines.append(env._affine(cos, sin, zoom, trans, CAR_SUPERSAMPLE, r0, c0))
        # The car is small and always at the same place: it gets a finer canvas
        # of its own (colour and coverage), unless it does not fit.
        pts, stripes = ApproxCarRacing._car_points(envs, car_affines)
        pr, pc = patches.shape[1:3]
        in_patch = ((pts.min(axis=(1, 2)) >= 0) & (pts[..., 0].max(axis=1) < 16 * pc)
                    & (pts[..., 1].max(axis=1) < 16 * pr)).tolist()
        patches[:] = 0
        for k, env in enumerate(envs):
            if in_patch[k]:
                env._draw_car(patches[k], pts[k], stripes[k])
            else:  # on the road's canvas; its patch stays empty
                _, zoom, trans, cos, sin = cameras[k]
                affine = env._affine(cos, sin, zoom, trans, SUPERSAMPLE)
                far_pts, far_stripes = ApproxCarRacing._car_points([env], [affine])
                env._draw_car(canvases[k], far_pts[0], far_stripes[0])
        # Box filters by halvings (OpenCV's fast 2x path), all envs stacked:
        # each canvas's height is a multiple of the factor, so none mixes with the next.
        road = canvases.reshape(-1, *canvases.shape[2:])
        while road.shape[1] > RED_SIZE:
            road = cv2.resize(road, (road.shape[1] // 2, road.shape[0] // 2), interpolation=cv2.INTER_AREA)
        car = patches.reshape(-1, *patches.shape[2:])
        while car.shape[1] > c1 - c0:
            car = cv2.resize(car, (car.shape[1] // 2, car.shape[0] // 2), interpolation=cv2.INTER_AREA)
        # Frame values: the road's as they are (whole numbers); below row `lo`,
        # where the car and the bars are painted on, in float, rounded once.
        out = np.zeros((n, RED_SIZE, RED_SIZE, 3), np.uint8)
        out[:, :road.shape[0] // n] = road.reshape(n, -1, RED_SIZE, 3)
        bars = ApproxCarRacing._bar_boxes(envs)
        lo = r0 if bars is None else min(r0, max(0, bars[1][0]))  # the car's rows, or the top bar's
        below = out[:, lo:].astype(np.float64)
        car = car.reshape(n, r1 - r0, c1 - c0, 4).astype(np.float64)  # colour premultiplied by coverage
        below[:, r0 - lo:r1 - lo, c0:c1] = below[:, r0 - lo:r1 - lo, c0:c1] * (1 - car[..., 3:] / 255) + car[..., :3]
        if bars is not None:
            ApproxCarRacing._draw_bars(bars, below, lo)
        out[:, lo:] = np.rint(below)
        # the reference's rounding loss, by lookup table
        out = cv2.LUT(out.reshape(n * RED_SIZE, RED_SIZE, 3), smoothscale_lut()).reshape(n, RED_SIZE, RED_SIZE, 3)
        for k, env in enumerate(envs):
            out[k, RED_SIZE - TEXT_ROWS:, :TEXT_COLS] = env._text_block()
        return out


def renderer_class(renderer):
    """The env class (a CarRacing-v3 subclass with 64x64 frames) for a renderer name."""
    classes = {"reference": CarRacing64, "exact": ExactCarRacing, "approx": ApproxCarRacing}
    if renderer not in classes:
        raise ValueError(f"renderer must be one of {RENDERERS}, not {renderer!r}")
    return classes[renderer]
