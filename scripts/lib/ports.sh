# scripts/lib/ports.sh: sourced by scripts/dev and scripts/services.

# port_holder PORT: who listens on TCP PORT (any address), as "name (pid N)",
# or nothing when no one does.
port_holder() {
  local line
  if command -v ss >/dev/null; then
    line=$(ss -Hltnp "( sport = :$1 )" 2>/dev/null | head -n 1)
    [[ -n $line ]] || return 0
    if [[ $line =~ users:\(\(\"([^\"]*)\",pid=([0-9]+) ]]; then
      printf '%s (pid %s)' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
      printf 'a process this user cannot see'
    fi
  elif (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    printf 'a process (install iproute2 to see which)'
  fi
}
