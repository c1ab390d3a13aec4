# packages.sh — sourced by the proxy's benchmark scripts: makes sure the peers' programs are
# there, from Debian's packages (redis-server, redis-tools, nutcracker, haproxy).
# A missing program is installed with `apt-get install -y` when the script runs as root (set
# AUTOCACHE_BENCH_INSTALL=0 to only check); otherwise the script stops and names the packages.
# shellcheck shell=bash

# Debian installs nutcracker and haproxy under /usr/sbin, which a non-root PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

# need_tools PROGRAM:PACKAGE...: every PROGRAM on the PATH, installing the missing ones' PACKAGEs.
need_tools() {
  local spec prog pkg missing=() pkgs=()
  for spec in "$@"; do
    prog=${spec%%:*}; pkg=${spec#*:}
    command -v "$prog" >/dev/null 2>&1 && continue
    missing+=("$prog")
    case " ${pkgs[*]} " in *" $pkg "*) ;; *) pkgs+=("$pkg") ;; esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || [ "${AUTOCACHE_BENCH_INSTALL:-1}" = 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${missing[*]}: install with apt-get install -y ${pkgs[*]} (run as root, this script does it)" >&2
    return 1
  fi
  echo "missing ${missing[*]}: installing ${pkgs[*]} with apt-get" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}" >&2; then
    apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}" >&2 || return 1
  fi
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || { echo "still missing ${spec%%:*} after apt-get" >&2; return 1; }
  done
}

# need_redis7: the cluster set-up passes --cluster-port, which redis-server has since 7.0
# (Debian 12 and later ship 7.x).
need_redis7() {
  local v
  v=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
  [ "${v:-0}" -ge 7 ] && return 0
  echo "redis-server ${v:-?}.x found; the Redis Cluster set-up needs 7.0 or later" >&2
  return 1
}

# print_usage FILE: the comment block at the top of FILE (after the #! line), without the '# '.
print_usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$1"
}
