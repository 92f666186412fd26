#!/usr/bin/env bash
# Build this repo as ONE ROS package with colcon (msg/DepthStatus.msg + our Python package + launch/,
# config/, lib/ppd_ros/depth_node) into build/ install/ log/ at the repo root.
#   bash scripts/colcon_build.sh           # quiet; skipped when no input changed since the last build
#   PPD_COLCON_FORCE=1 bash scripts/colcon_build.sh   # build even if the stamp matches
# Works with the PyPI ROS wheels in a venv (the venv is the ROS prefix) and with an apt ROS 2 install
# (source /opt/ros/<distro>/setup.bash first). Safe to run concurrently: builds are serialised by flock.
set -eo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v colcon >/dev/null 2>&1 || { echo "[colcon_build] colcon not on PATH" >&2; exit 1; }
PY=$(command -v python3 || command -v python)
mkdir -p build
exec 9>build/.colcon_build.lock
flock 9

# colcon from a not-activated venv that holds the ROS wheels: that venv is the prefix
if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${AMENT_PREFIX_PATH:-}" ]; then
  cand=$(cd "$(dirname "$(command -v colcon)")/.." && pwd)
  if [ -d "$cand/share/ament_cmake" ] && [ -x "$cand/bin/python" ]; then VIRTUAL_ENV=$cand; fi
fi
if [ -n "${VIRTUAL_ENV:-}" ] && [ -d "$VIRTUAL_ENV/share/ament_cmake" ]; then
  export AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH:-$VIRTUAL_ENV} CMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH:-$VIRTUAL_ENV}
  PY="$VIRTUAL_ENV/bin/python"
fi

# Stamp: every input colcon installs + the interpreter and prefix it builds against.
stamp=build/.ppd_ros_colcon_stamp
want=$( { echo "$PY ${VIRTUAL_ENV:-} ${ROS_DISTRO:-}"; \
          { find CMakeLists.txt package.xml msg ppd_ros launch config scripts/depth_node -type f \
               ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null || true; } | LC_ALL=C sort | xargs -r sha256sum; } \
        | sha256sum | cut -c1-32)
if [ -z "${PPD_COLCON_FORCE:-}" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
   && [ -f install/setup.bash ] && [ -x install/ppd_ros/lib/ppd_ros/depth_node ]; then
  exit 0
fi

# PyPI wheels: the venv is the ROS prefix. Their CMake exports point at the manylinux build's Python
# (/opt/python/cp311-cp311/...); repoint them at this interpreter (ros2_env.md section 4). Idempotent.
if [ -n "${VIRTUAL_ENV:-}" ] && [ -d "$VIRTUAL_ENV/share/ament_cmake" ]; then
  PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$PY" -c 'import numpy; print(numpy.get_include())')
  { grep -rl --include='*.cmake' /opt/python/cp311-cp311 "$VIRTUAL_ENV/share" || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
fi

# A venv inside the repo (./.venv) puts numpy's headers inside the package's source tree, and CMake
# refuses to export a target whose include path is "prefixed in the source directory". Hand
# FindPython3 the same headers through a symlink outside the tree.
cmake_extra=()
NPINC_REAL=$("$PY" -c 'import numpy; print(numpy.get_include())' 2>/dev/null || true)
case "$NPINC_REAL" in
  "$ROOT"/*)
    link_dir="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/ppd_ros"
    mkdir -p "$link_dir" && ln -sfn "$NPINC_REAL" "$link_dir/numpy_include"
    cmake_extra+=("-DPython3_NumPy_INCLUDE_DIR=$link_dir/numpy_include") ;;
esac

t0=$(date +%s)
logf=build/colcon_build.log
# PYTHONDONTWRITEBYTECODE only makes CMake's byte-compile step print warnings; the build does not need it.
if env -u PYTHONDONTWRITEBYTECODE colcon --log-base log build --base-paths . --build-base build --install-base install \
     --packages-select ppd_ros --event-handlers console_direct- console_cohesion- console_stderr- \
     console_start_end- status- summary- desktop_notification- terminal_title- \
     --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$PY" "${cmake_extra[@]}" >"$logf" 2>&1; then
  echo "$want" > "$stamp"
  echo "[colcon_build] ppd_ros built into install/ in $(( $(date +%s) - t0 )) s"
else
  rc=$?
  echo "[colcon_build] colcon build FAILED (rc $rc); last lines of $logf and log/latest_build:" >&2
  tail -n 40 "$logf" >&2 || true
  tail -n 40 log/latest_build/ppd_ros/stdout_stderr.log >&2 2>/dev/null || true
  rm -f "$stamp"
  exit $rc
fi
