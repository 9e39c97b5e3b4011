"""Pictures of a feeder: buses coloured by voltage, lines and transformers, device states.

The layout (bus positions, edges, device markers) is computed once per environment; a
frame only updates colours and labels, then redraws. Positions come from the circuit's bus
coordinates; buses without coordinates sit at their nearest located neighbour, and a
circuit without any coordinates gets a seeded graph layout.

Colours: a diverging map centred on 1.0 pu, from 0.95 (under-voltage end) to 1.05 pu
(over-voltage end); values beyond take the end colours. A bus shows the minimum (default)
or maximum voltage of its phases.

PV inverters (``_pv`` systems) are filled hexagons beside their buses (down and left, so the
bus keeps its voltage colour), coloured by their reactive power in pu of their kVA rating
on a second diverging map, :data:`PV_CMAP`, from -1 (absorbing, brown) through 0 (white) to
+1 (injecting, green), with a label ``q +0.50`` and a legend entry.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

V_LOW, V_HIGH = 0.95, 1.05
CMAP = "RdBu_r"  # blue under, white at 1.0, red over
PV_CMAP = "BrBG"  # PV reactive power, pu of kVA: brown absorbing (-1), white 0, green injecting (+1)


def _positions(bus_names: Sequence[str], xy: np.ndarray, edges: list) -> np.ndarray:
    """Coordinates for every bus: given ones, else a located neighbour's (breadth first),
    else a seeded spring layout of the whole graph when nothing is located."""
    pos = xy.copy()
    index = {b: i for i, b in enumerate(bus_names)}
    adj: dict[int, list[int]] = {i: [] for i in range(len(bus_names))}
    for _, a, b, _ in edges:
        if a in index and b in index:
            adj[index[a]].append(index[b])
            adj[index[b]].append(index[a])
    located = ~np.isnan(pos[:, 0])
    if not located.any():
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(len(bus_names)))
        g.add_edges_from((u, v) for u in adj for v in adj[u])
        layout = nx.spring_layout(g, seed=0)
        return np.array([layout[i] for i in range(len(bus_names))])
    queue = deque(np.flatnonzero(located).tolist())
    while queue:
        u = queue.popleft()
        for v in adj[u]:
            if np.isnan(pos[v, 0]):
                pos[v] = pos[u]
                queue.append(v)
    # buses unreachable from any located one: stack them below the drawing
    missing = np.isnan(pos[:, 0])
    if missing.any():
        lo = np.nanmin(pos, axis=0)
        pos[missing] = lo - 1.0
    return pos


@dataclass(frozen=True)
class FeederDrawing:
    """What a picture of a feeder needs, read once from OpenDSS (picklable, so the vector
    engine's parent draws without an engine of its own).

    Attributes:
        bus_names: buses in observation order.
        bus_start: index of each bus's first node in the voltage vector.
        topology: :meth:`vvc_batch.power_flow.opendss.engine.DssEngine.topology` (coordinates, edges, device buses).
    """

    bus_names: tuple[str, ...]
    bus_start: np.ndarray
    topology: dict


def feeder_drawing(core) -> FeederDrawing:
    """The drawing data of a :class:`~vvc_batch.env.core.VVCBatch`'s circuit."""
    lay = core.circuit_names
    return FeederDrawing(tuple(lay.bus_names), np.asarray(lay.bus_start), core.engines[0].topology())


class FeederRenderer:
    """Draws one feeder; :meth:`draw` returns an RGB array.

    Args:
        drawing: the feeder (:func:`feeder_drawing`), or a :class:`~vvc_batch.env.core.VVCBatch`.
        node_bound: ``"minimum"`` or ``"maximum"`` voltage of a bus's phases.
        figsize: inches.
    """

    def __init__(self, drawing, node_bound: str = "minimum", figsize: tuple[float, float] = (8, 6), dpi: int = 80,
                 interactive: bool = False):
        if node_bound not in ("minimum", "maximum"):
            raise ValueError(f"node_bound must be 'minimum' or 'maximum', got {node_bound!r}")
        import matplotlib

        if not interactive:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection
        from matplotlib.colors import Normalize, TwoSlopeNorm

        if not isinstance(drawing, FeederDrawing):
            drawing = feeder_drawing(drawing)
        self.node_bound = node_bound
        top = drawing.topology
        self.bus_names = list(drawing.bus_names)
        self.pos = _positions(self.bus_names, top["bus_xy"], top["edges"])
        index = {b: i for i, b in enumerate(self.bus_names)}
        self.fig = fig = plt.figure(figsize=figsize, dpi=dpi)
        self.ax = ax = fig.add_axes([0.03, 0.03, 0.8, 0.88])
        ax.set_axis_off()
        for kind, color, width in (("line", "0.35", 1.2), ("transformer", "tab:green", 2.5)):
            segs = [(self.pos[index[a]], self.pos[index[b]]) for k, a, b, _ in top["edges"]
                    if k == kind and a in index and b in index]
            if segs:
                ax.add_collection(LineCollection(segs, colors=color, linewidths=width, zorder=1,
                                                 label=f"{kind}s"))
        self.norm = TwoSlopeNorm(vcenter=1.0, vmin=V_LOW, vmax=V_HIGH)
        self.cmap = plt.get_cmap(CMAP)
        size = 60 if len(self.bus_names) < 300 else 6
        self.scatter = ax.scatter(self.pos[:, 0], self.pos[:, 1], c=np.ones(len(self.bus_names)), cmap=self.cmap,
                                  norm=self.norm, s=size, zorder=3, edgecolors="none")
        cax = fig.add_axes([0.86, 0.1, 0.03, 0.75])
        cb = fig.colorbar(self.scatter, cax=cax, extend="both")
        cb.set_label(f"{node_bound} bus voltage (pu)")
        # device markers
        self.device_texts = []
        devs = top["devices"]
        self._dev_pos = {
            "capacitors": [self.pos[index[b]] for b in devs["capacitors"]],
            "regulators": [(self.pos[index[a]] + self.pos[index[b]]) / 2 for a, b in devs["regulators"]],
            "batteries": [self.pos[index[b]] for b in devs["batteries"]],
        }
        span = np.ptp(self.pos, axis=0).max() or 1.0
        self._offset = 0.015 * span
        self._stacked: dict[tuple[float, float], int] = {}  # labels already placed at a point
        marker = {"capacitors": ("s", "tab:orange"), "regulators": ("^", "tab:purple"), "batteries": ("D", "tab:cyan")}
        for key, points in self._dev_pos.items():
            if points:
                p = np.array(points)
                m, col = marker[key]
                ax.scatter(p[:, 0], p[:, 1], marker=m, s=90, facecolors="none", edgecolors=col, linewidths=1.5,
                           zorder=4, label=key)
                for q in points:
                    key_q = (round(float(q[0]), 6), round(float(q[1]), 6))
                    k = self._stacked.get(key_q, 0)
                    self._stacked[key_q] = k + 1
                    self.device_texts.append(ax.text(q[0] + self._offset, q[1] + self._offset * (1 - 2.2 * k), "",
                                                     fontsize=7, color=col, zorder=5))
        self._pv_pos = np.array([self.pos[index[b]] for b in devs.get("pv", [])]).reshape(-1, 2)
        self._pv_pos = self._pv_pos - 1.2 * self._offset  # beside the bus, below and left
        self.pv_norm = Normalize(vmin=-1.0, vmax=1.0)
        self.pv_cmap = plt.get_cmap(PV_CMAP)
        self.pv_scatter = None
        if len(self._pv_pos):
            self.pv_scatter = ax.scatter(self._pv_pos[:, 0], self._pv_pos[:, 1], c=np.zeros(len(self._pv_pos)),
                                         cmap=self.pv_cmap, norm=self.pv_norm, marker="h", s=110, edgecolors="k",
                                         linewidths=0.8, zorder=6, label="PV inverters (colour: kvar / kVA)")
            for q in self._pv_pos:
                self.device_texts.append(ax.text(q[0] - 5 * self._offset, q[1] - 1.5 * self._offset, "",
                                                 fontsize=7, color="darkgreen", zorder=5))
        ax.legend(loc="lower left", fontsize=7, frameon=False)
        ax.autoscale_view()
        ax.set_aspect("equal", adjustable="datalim")
        self.title = ax.set_title("", fontsize=9)
        self._starts = np.asarray(drawing.bus_start)

    # ------------------------------------------------------------------ drawing
    def bus_values(self, v_nodes: np.ndarray) -> np.ndarray:
        """Per-bus minimum or maximum of node voltages (pu)."""
        f = np.minimum if self.node_bound == "minimum" else np.maximum
        return f.reduceat(np.asarray(v_nodes, dtype=np.float64), self._starts)

    def draw(self, v_nodes: np.ndarray, caps: Sequence[float], taps: Sequence[float], socs: Sequence[float],
             title: str, pv_q: Sequence[float] = ()) -> np.ndarray:
        """Render one frame; returns an (H, W, 3) uint8 array. ``v_nodes``: node voltages (pu);
        ``pv_q``: the PV inverters' reactive power, pu of their kVA (positive injecting; one per
        inverter, in the observation's order).

        Raises:
            ValueError: ``pv_q`` does not have one entry per inverter of the drawing.
        """
        self.scatter.set_array(np.clip(self.bus_values(v_nodes), V_LOW, V_HIGH))
        q = np.asarray(pv_q, dtype=np.float64).ravel()
        if q.size != len(self._pv_pos):
            raise ValueError(f"pv_q must have one entry per PV inverter ({len(self._pv_pos)}), got {q.size}")
        if self.pv_scatter is not None:
            self.pv_scatter.set_array(np.clip(q, -1.0, 1.0))
        labels = [f"{'on' if c else 'off'}" for c in caps] + [f"tap {int(t)}" for t in taps] + \
                 [f"soc {s:.2f}" for s in socs] + [f"q {x:+.2f}" for x in q]
        for text, label in zip(self.device_texts, labels):
            text.set_text(label)
        self.title.set_text(title)
        self.fig.canvas.draw()
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()

    def pixel_of(self, bus: str) -> tuple[int, int]:
        """(row, column) of a bus's marker in the frames."""
        x, y = self.ax.transData.transform(self.pos[self.bus_names.index(bus)])
        h = self.fig.canvas.get_width_height()[1]
        return int(round(h - y)), int(round(x))

    def pv_pixel(self, i: int) -> tuple[int, int]:
        """(row, column) of PV inverter ``i``'s marker in the frames."""
        x, y = self.ax.transData.transform(self._pv_pos[i])
        h = self.fig.canvas.get_width_height()[1]
        return int(round(h - y)), int(round(x))

    def pv_color_of(self, q: float) -> np.ndarray:
        """The RGB (0..255) colour of a PV inverter at ``q`` (kvar / kVA, clipped to [-1, 1])."""
        rgba = self.pv_cmap(self.pv_norm(np.clip(q, -1.0, 1.0)))
        return np.round(np.array(rgba[:3]) * 255).astype(int)

    def color_of(self, v: float) -> np.ndarray:
        """The RGB (0..255) colour a bus at ``v`` pu gets."""
        rgba = self.cmap(self.norm(np.clip(v, V_LOW, V_HIGH)))
        return np.round(np.array(rgba[:3]) * 255).astype(int)

    def close(self) -> None:
        import matplotlib.pyplot as plt

        plt.close(self.fig)


def observation_frame(renderer: FeederRenderer, layout, obs: np.ndarray, title: str) -> np.ndarray:
    """A frame of one observation vector (an :class:`~vvc_batch.env.spaces.ObservationLayout`
    says where the voltages and device states are)."""
    return renderer.draw(obs[layout.voltages], obs[layout.capacitors], obs[layout.regulators], obs[layout.soc],
                         title, obs[layout.pv_q])


def frame_title(env_name: str, hour: int, last_action: Any = None) -> str:
    """The title of a frame: environment, hour and the last action."""
    act = ""
    if last_action is not None:
        a = np.asarray(last_action).ravel()
        act = f"; last action {a.round(2).tolist()}" if a.size <= 12 else f"; last action ({a.size} settings)"
    return f"{env_name} hour {hour}{act}"


def env_frame(env, renderer: FeederRenderer, last_action: Any = None) -> np.ndarray:
    """A frame of a single environment's present state."""
    core = env.core
    return observation_frame(renderer, core.obs_layout, core.buffers.obs[0],
                             frame_title(core.config.name, int(core.t[0]), last_action))

__all__ = [
    "CMAP",
    "PV_CMAP",
    "env_frame",
    "feeder_drawing",
    "FeederDrawing",
    "FeederRenderer",
    "frame_title",
    "observation_frame",
]
