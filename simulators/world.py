"""One simulated physical world shared by every emulated instrument.

The stage carries the sample under a fixed MTJ sensor; the coils (and the ambient field) set the
field at the sample; the fluxgate sits beside the sample. Positions come from the stage model in
the sample frame: the stage's z is the sensor's height above the sample top, and
`sample_offset` says where the sample sits relative to the stage origin (change it between two
scans to mimic a remount).

Simulated time is event driven. The models of stage and coils are closed-form in time between
commands, so before any emulator handles a command the world is `sync`ed: every listener (the
lock-in's low-pass filter) integrates its input up to now while the models still describe the
interval just ended. The backend holds `lock` around sync and command so threads (TCP clients)
see one consistent world.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from simulators.coil_model import CoilModel
from simulators.sample import VirtualSample
from simulators.sensor_model import FluxgateModel, MTJSensor
from simulators.stage_model import StageModel
from smm_daq.clock import Clock

_CACHE_GRID = 1e-10  # m: positions closer than this share a cached sample response
_CACHE_SIZE = 20_000


class World:
    """The sample, the sensor, the stage, the coils and the fluxgate, on one clock."""

    def __init__(
        self,
        clock: Clock,
        sample: VirtualSample,
        sensor: MTJSensor,
        stage: StageModel,
        coils: CoilModel,
        fluxgate: FluxgateModel | None = None,
        *,
        rng: np.random.Generator | None = None,
        sample_offset: Sequence[float] = (0.0, 0.0),
    ) -> None:
        self.clock = clock
        self.sample = sample
        self.sensor = sensor
        self.stage = stage
        self.coils = coils
        self.fluxgate = fluxgate
        self.rng = rng if rng is not None else np.random.default_rng()
        self.sample_offset = np.array(sample_offset, dtype=float)
        self.lock = threading.RLock()
        self.start_time = clock.now()
        self._synced = self.start_time
        self._listeners: list[Callable[[float], None]] = []
        self._cache: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._cached_for: tuple[int, tuple[float, float]] | None = None

    # --- geometry and fields -------------------------------------------------------------

    def sensor_positions(self, times: Sequence[float]) -> np.ndarray:
        """Sensor centres (K, 3) m in the sample's own frame at each time."""
        pos = np.array([self.stage.sample_position(t) for t in times], dtype=float)
        pos[:, :2] -= self.sample_offset
        return pos

    def applied_fields(self, times: Sequence[float]) -> np.ndarray:
        """Total field (K, 3) T at the sample (coils + ambient) at each time."""
        return np.array([self.coils.field_at_sample(t) for t in times], dtype=float)

    def bz_noiseless(self, times: Sequence[float]) -> np.ndarray:
        """Bz (K,) T the sensor sees: the sample's field plus the applied field's z part."""
        fields = self.applied_fields(times)
        r = self._response(self.sensor_positions(times))
        return r[:, 0] + np.einsum("kj,kj->k", r[:, 1:], fields) + fields[:, 2]

    def _response(self, positions: np.ndarray) -> np.ndarray:
        """The sample's response (K, 4) at sensor positions, cached by position.

        A settled stage revisits one position many times (every poll, every filter sub-step),
        and the closed-form kernel costs a fraction of a millisecond per position.
        """
        if self._cached_for != (id(self.sample), self.sensor.active_area):
            self._cache.clear()  # the sample or the sensor was replaced
            self._cached_for = (id(self.sample), self.sensor.active_area)
        keys = list(map(tuple, np.round(positions / _CACHE_GRID).astype(np.int64).tolist()))
        rows = [self._cache.get(k) for k in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            fresh = self.sample.response(positions[missing], self.sensor.active_area)
            for i, row in zip(missing, fresh, strict=True):
                # kept here too: more new positions than the cache holds (a fast capture's
                # batch) push the first ones out before the batch is answered
                rows[i] = self._cache[keys[i]] = row
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return np.array(rows)

    def bz_at_sensor(self, now: float) -> float:
        """Bz (T) at the sensor now: noiseless truth + drift + one draw of white noise."""
        drift = self.sensor.drift_rate * (now - self.start_time)
        noise = self.rng.normal(0.0, self.sensor.noise_rms) if self.sensor.noise_rms else 0.0
        return float(self.bz_noiseless([now])[0] + drift + noise)

    # --- what the instruments see --------------------------------------------------------

    def lockin_signal(self, times: Sequence[float], excitation: float) -> np.ndarray:
        """Noiseless in-phase volts (K,) at the lock-in input (drift and offset included)."""
        t = np.asarray(times, dtype=float)
        return self.sensor.volts(self.bz_noiseless(t), t - self.start_time, excitation)

    def lockin_noise_density(self, excitation: float) -> float:
        """White noise at the lock-in input, V/√Hz."""
        return abs(self.sensor.gain(excitation)) * self.sensor.noise_density()

    def fluxgate_volts(self, now: float) -> np.ndarray:
        """The fluxgate's three output voltages now (noise included)."""
        if self.fluxgate is None:
            raise RuntimeError("this world has no fluxgate")
        return self.fluxgate.volts(self.coils.field_at_sample(now), self.rng)

    # --- event-driven time ---------------------------------------------------------------

    def add_listener(self, advance_to: Callable[[float], None]) -> None:
        """Register something that must integrate the world up to a time before it changes."""
        self._listeners.append(advance_to)

    def sync(self, now: float | None = None) -> None:
        """Bring every listener up to `now` (default the clock's now). Call before any change."""
        t = self.clock.now() if now is None else now
        with self.lock:
            if t <= self._synced:
                return
            for advance_to in self._listeners:
                advance_to(t)
            self._synced = t
