"""What a PI GCS controller that does not report it is taken to have, by its model in `*IDN?`.

The servo update times are those PIPython (PI's own Python library, 2.11, module
`pipython/pidevice/gcs2/gcs2datarectools.py`) falls back on, its `SERVOTIMES`, for
controllers that do not answer parameter 0x0E000200.

The models whose Data Recorder Max Points (0x16000200) is the whole recorder, shared among
its tables, are those named by the comment on the branch of PIPython's `getmaxnumvalues` that
divides 0x16000200 by Data Recorder Chan Number (0x16000300) where a controller lists both
(E-709, E-712, E-725, E-753.1CD, E-727, E-723K001). Where 0x16000300 is not listed, PIPython
divides 0x16000200 by `TNR?` on every controller (its next branch, commented C-843); the
driver does so only on these models (`recorder_shared`), as a controller whose every table
holds 0x16000200 (a C-884: 1024 points, `TNR?` 8) would otherwise be taken to hold 128.
"""

from __future__ import annotations

import re

# s: the servo update time of the models PIPython's SERVOTIMES names (upper case)
SERVO_TIMES = {
    "C-663.11": 50e-6, "C-663.12": 50e-6,
    "C-702.00": 100e-6,
    "C-843": 410e-6,
    "C-863.11": 50e-6, "C-863.12": 50e-6,
    "C-867.160": 50e-6, "C-867.260": 50e-6, "C-867.262": 50e-6, "C-867.OE": 50e-6,
    "C-867.B0017": 100e-6, "C-867.B0019": 100e-6, "C-867.B024": 100e-6,
    "C-877": 100e-6,
    "C-880": 4096e-6,
    "C-884.4D": 50e-6, "C-884.4DB": 50e-6,
    "C-887": 100e-6,
    "E-710": 200e-6,
    "E-755": 200e-6,
    "E-861": 50e-6, "E-861.11C885": 50e-6,
    "E-871.1A1": 50e-6, "E-871.1A1N": 50e-6,
    "E-873": 50e-6, "E-873.1A1": 50e-6, "E-873.3QTU": 50e-6, "E-873.10C885": 50e-6,
}  # fmt: skip

# the models whose 0x16000200 counts the points of all record tables together
SHARED_RECORDER_MODELS = ("E-709", "E-712", "E-723", "E-725", "E-727", "E-753")


def _family(model: str) -> str:
    """'C-884.4DC' -> 'C-884': the model less its variant."""
    return model.upper().partition(".")[0]


def servo_time_preset(model: str) -> float | None:
    """The servo update time (s) PIPython takes for `model` (`*IDN?`'s model field), or None.
    A variant it does not name (a C-884.4DC) takes its family's time where every variant of
    that family it names has the same (the C-884.4D and .4DB: 50 µs), not where they differ
    (the C-867's 50 and 100 µs). A wrong one is caught as a line is read back: the recorder's
    SAMPLE_TIME is then not what the rate set makes of it."""
    key = model.strip().upper()
    if key in SERVO_TIMES:
        return SERVO_TIMES[key]
    family = _family(key)
    times = {t for name, t in SERVO_TIMES.items() if _family(name) == family}
    return times.pop() if len(times) == 1 else None


def recorder_shared(model: str) -> bool:
    """Whether `model`'s Data Recorder Max Points (0x16000200) is shared among its tables."""
    key = model.strip().upper()
    return any(re.match(rf"{re.escape(name)}(?![0-9])", key) for name in SHARED_RECORDER_MODELS)
