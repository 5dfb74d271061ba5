#!/usr/bin/env bash
# The FinOps FOCUS validator (PyPI focus-validator) for tests/test_focus_validator.py. It needs Python >= 3.12 and
# Debian 12 ships 3.11, so this builds a minimal Debian trixie root (Python 3.13) with debootstrap, installs the
# validator in a venv inside it and writes .venv-focus/bin/python, which runs that venv's python through chroot.
# The root is cached outside the repo ($GENOPS_CI_CACHE, default /var/cache/genops-ci) and reused once complete:
# each build step leaves a stamp when it finished, so an interrupted build is found and redone.
#
#   bash .ci/focus-validator.sh            provision; prints the wrapper's path, or fails with a message on stderr
#   .venv-focus/bin/python ARGS...         = .ci/focus-validator.sh --python ARGS...
#
# Commands run in the root inside a private mount namespace (unshare) where /dev, /proc, /tmp, $TMPDIR and the repo
# are bind-mounted at their host paths: host files passed as arguments are visible, and the mounts vanish with the
# process, so nothing is left to unmount. Needs root.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/.ci/focus-validator.sh
CACHE=${GENOPS_CI_CACHE:-/var/cache/genops-ci}
ROOT=$CACHE/trixie
BASE="trixie minbase python3,python3-venv"  # suite, variant, packages; a change rebuilds the root
VALIDATOR=focus-validator==2.2.1
# It pins numpy ^1.26, which has no wheels for Python 3.13 (only a source build with a compiler): uv overrides the
# pin with numpy 2, which its pandas, pyarrow and polars support.
OVERRIDE='numpy>=2'
VENV=/opt/focus-validator
WRAPPER=$REPO/.venv-focus/bin/python

case "${1:-}" in
  --python)  # run the validator's python; the working directory is kept when it is visible in the root
    shift
    [ -e "$ROOT$VENV/.complete" ] || { echo "error: $ROOT$VENV is missing: run bash .ci/focus-validator.sh" >&2; exit 2; }
    exec 9<"$CACHE/lock"
    flock -s 9  # not while a provisioning rebuilds the root
    exec unshare --mount --propagation private -- bash "$SELF" --in-namespace "$PWD" env -i PATH=/usr/bin:/bin \
      HOME=/root LANG=C.UTF-8 "$VENV/bin/python" "$@" ;;
  --in-namespace)  # internal: bind the host paths, then chroot (only ever inside the unshare above)
    cwd=$2; shift 2
    dirs=(/dev /proc /tmp "$REPO")
    case "${TMPDIR:-}" in /?*) [ -d "$TMPDIR" ] && dirs+=("$TMPDIR") ;; esac
    for dir in "${dirs[@]}"; do
      mkdir -p "$ROOT$dir" && mount --rbind "$dir" "$ROOT$dir"
    done
    [ -d "$ROOT$cwd" ] || cwd=/
    exec chroot "$ROOT" /usr/bin/env --chdir="$cwd" "$@" ;;
esac

in_root() { unshare --mount --propagation private -- bash "$SELF" --in-namespace / "$@"; }

rm -rf "$REPO/.venv-focus"
[ "$(id -u)" = 0 ] || { echo "FOCUS validator: needs root (debootstrap, chroot)" >&2; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9  # CI runs sharing the machine build the cache once

if [ "$(cat "$ROOT/.complete" 2>/dev/null)" != "$BASE" ]; then
  # Mounts left in the root (deepest first) must go before the directory does; --one-file-system then refuses to
  # delete through any that remain.
  awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$ROOT"
  if ! command -v debootstrap >/dev/null; then
    apt-get install -y -q debootstrap >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q debootstrap >/dev/null 2>&1; } \
      || { echo "FOCUS validator: apt-get install debootstrap failed" >&2; exit 1; }
  fi
  echo "FOCUS validator: debootstrap trixie into $ROOT (log: $CACHE/debootstrap.log)" >&2
  read -r suite variant packages <<<"$BASE"
  # In its own mount namespace, so the /proc and /sys debootstrap mounts in the root cannot outlive it.
  unshare --mount --propagation private -- debootstrap --variant="$variant" --include="$packages" "$suite" "$ROOT" \
    http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 || { tail -n 5 "$CACHE/debootstrap.log" >&2; exit 1; }
  echo "$BASE" >"$ROOT/.complete"
fi

if [ "$(cat "$ROOT$VENV/.complete" 2>/dev/null)" != "$VALIDATOR $OVERRIDE" ]; then
  rm -rf "$ROOT$VENV"
  # The root trusts the host's CAs (an egress proxy may re-sign TLS) and resolves names as the host does.
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/host-ca-certificates.crt"
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  echo "$OVERRIDE" >"$ROOT/etc/focus-validator-overrides.txt"
  in_root env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 SSL_CERT_FILE=/etc/host-ca-certificates.crt \
      PIP_CERT=/etc/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
      ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${https_proxy:+https_proxy=$https_proxy} \
      sh -c "python3 -m venv $VENV && $VENV/bin/pip install -q --no-cache-dir uv && $VENV/bin/uv pip install -q \
             --no-cache --python $VENV/bin/python --override /etc/focus-validator-overrides.txt '$VALIDATOR'" >&2 \
    || { echo "FOCUS validator: installing $VALIDATOR in $ROOT failed" >&2; exit 1; }
  echo "$VALIDATOR $OVERRIDE" >"$ROOT$VENV/.complete"
fi

flock -s 9  # built: share the lock, as the wrapper does, for the check below
mkdir -p "$(dirname "$WRAPPER")"
printf '#!/bin/sh\n# Written by .ci/focus-validator.sh: Python 3.13 with %s, in %s.\nexec bash "%s" --python "$@"\n' \
  "$VALIDATOR" "$ROOT" "$SELF" >"$WRAPPER"
chmod +x "$WRAPPER"
if ! "$WRAPPER" -c 'import focus_validator.main'; then
  rm -rf "$REPO/.venv-focus" "$ROOT$VENV/.complete"  # the next run reinstalls it
  echo "FOCUS validator: $ROOT$VENV cannot import focus_validator.main" >&2
  exit 1
fi
echo "$WRAPPER"
