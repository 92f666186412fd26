# Sourced by bootstrap.sh inside the activated .venv: builds msg/ with colcon (when the ROS wheels
# are installed) and confines DDS to loopback with a private domain. Safe to source twice.
ROOT=${ROOT:-$(pwd)}
export ROS_LOG_DIR=${ROS_LOG_DIR:-$(mktemp -d)}
export AMENT_PREFIX_PATH=${AMENT_PREFIX_PATH:-$VIRTUAL_ENV} CMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH:-$VIRTUAL_ENV}
XML="$ROOT/config/fastdds_localhost.xml"
if [ -f "$XML" ]; then export FASTDDS_DEFAULT_PROFILES_FILE=$XML FASTRTPS_DEFAULT_PROFILES_FILE=$XML; fi
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 100 + 101))}
if [ -f "$ROOT/scripts/colcon_build.sh" ] && command -v colcon >/dev/null 2>&1; then
  bash "$ROOT/scripts/colcon_build.sh"
  if [ -f "$ROOT/install/setup.bash" ]; then
    set +u
    # shellcheck disable=SC1091
    . "$ROOT/install/setup.bash"
  fi
fi
