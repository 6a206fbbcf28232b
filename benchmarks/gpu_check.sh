#!/usr/bin/env bash
# The MMT GPU path on a machine with a CUDA GPU: the CPU/GPU agreement tests (cuboid grains:
# small and medium cases; point-source grains: the dipole, quadrupole and octupole kernels for
# point, area and volume sensors, their inversions and joint inversions of two scans), then
# mmt_scale.py on the GPU for the paper's largest case (goal: under 10 s from synthetic sample
# to uncertainties on one H200) and the lab-size stand-in (goal: under 60 s) with cuboid
# grains, then with point grains: the lab-size stand-in and the paper's largest case under the
# dipole model (the lab's own workflow) and the medium case under the quadrupole model (the
# multipole kernels compile on first use, within these times). Needs python3 with numpy,
# scipy, h5py, numba (with its CUDA target), CuPy and pytest; imports only the MMT modules (no
# dask, pyvisa or Qt), from this checkout.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh      # from the repository root
#   PARTS=models OUT=/some/dir bash benchmarks/gpu_check.sh   # point-source grains only
#
# PARTS names what runs after the environment: "cuboid" (cuboid grains' tests and runs, about
# 4 to 6 minutes) and "models" (point-source grains and joint inversions, about 3 to 5
# minutes); both by default. Every step's output goes to $OUT/<step>.txt; a failing step does
# not stop the next; the figures are gathered in $OUT/gpu_figures.txt.
set -u -o pipefail
set -x
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
FIG=$OUT/gpu_figures.txt
: >"$FIG"
status=0
PARTS=" ${PARTS:-cuboid models} "

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output teed to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*" | tee -a "$FIG"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$FIG"
    [ "$rc" -eq 0 ] || status=1
    return 0
}

step environment 60 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv; python3 -c "
import sys, numpy, scipy, numba, cupy
from numba import cuda
print(sys.version.split()[0], \"numpy\", numpy.__version__, \"scipy\", scipy.__version__,
      \"numba\", numba.__version__, \"cupy\", cupy.__version__, \"numba.cuda\", cuda.__file__)
print(\"cuda.is_available\", cuda.is_available(), \"devices\", cupy.cuda.runtime.getDeviceCount())
from smm_daq.analysis.mmt.solver import device
print(\"MMT device auto ->\", device.resolve(\"auto\"), \"| problem:\", device.gpu_problem())
"'
cat "$OUT/environment.txt" >>"$FIG"

if [[ $PARTS == *" cuboid "* ]]; then
    # The agreement tests: the GPU (small and medium cases, the Green's block of point and
    # area sensors), the same logic on NumPy, the kernels in numba's simulator, the imports.
    step agreement 150 python3 -m pytest -q -rA -s -p no:cacheprovider tests/test_mmt_device.py
    grep -E "GPU against CPU|passed|failed|skipped|error" "$OUT/agreement.txt" >>"$FIG"
    for preset in paper-largest lab-size; do
        step "scale-$preset" 100 python3 benchmarks/mmt_scale.py --preset "$preset" --device gpu
        cat "$OUT/scale-$preset.txt" >>"$FIG"
    done
fi

if [[ $PARTS == *" models "* ]]; then
    # The same for point-source grains and joint inversions (the multipole kernels compile on
    # first use: 18 of them, which takes most of this step's time).
    step agreement-models 240 python3 -m pytest -q -rA -s -p no:cacheprovider \
        tests/test_mmt_device_models.py
    grep -E "GPU block within|GPU against CPU|joint cuboid|passed|failed|skipped|error" \
        "$OUT/agreement-models.txt" >>"$FIG"
    for run in "lab-size dipole" "paper-largest dipole" "medium quadrupole"; do
        read -r preset model <<<"$run"
        step "scale-$preset-$model" 100 python3 benchmarks/mmt_scale.py --preset "$preset" \
            --model "$model" --device gpu
        cat "$OUT/scale-$preset-$model.txt" >>"$FIG"
    done
fi

set +x
echo "figures: $FIG"
exit $status
