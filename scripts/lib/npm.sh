# scripts/lib/npm.sh: sourced by scripts/dev and scripts/test.

# npm_ci DIR: `npm ci` in DIR unless its node_modules was installed from the
# same package-lock.json (a checksum kept in node_modules after each install),
# so a second run does not reinstall what is there. NPM_CI=always installs
# anyway.
npm_ci() {
  local dir=$1 sum stamp
  stamp=$dir/node_modules/.scalable-chat-go-lock.sha256
  sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ ${NPM_CI:-} != always && -f $stamp && $(cat "$stamp") == "$sum" ]]; then
    printf 'npm ci (%s): node_modules matches package-lock.json; skipped (NPM_CI=always installs anyway)\n' "$dir" >&2
    return 0
  fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  printf '%s\n' "$sum" >"$stamp"
}
