#!/bin/sh
# The container's entrypoint: refuses to open the control port beyond loopback without a secret
# (anyone who reaches it controls webtalk), then runs webtalk with the given flags as PID 1's child
# replacement (exec), so SIGTERM from `docker stop` reaches webtalk itself.
set -eu
bin="${WEBTALK_BIN:-/usr/local/bin/webtalk}"
private="${WEBTALK_PRIVATE:-127.0.0.1:12344}"
secret="${WEBTALK_SECRET:-}"
prev=""
for arg in "$@"; do
  case "$prev" in --private) private="$arg" ;; --secret) secret="$arg" ;; esac
  case "$arg" in --private=*) private="${arg#--private=}" ;; --secret=*) secret="${arg#--secret=}" ;; esac
  prev="$arg"
done
host="${private%:*}"
case "$host" in
  127.*|localhost|\[::1\]|::1) ;;
  *)
    if [ -z "$secret" ]; then
      echo "docker-entrypoint: the control port would listen on $private without a secret; set WEBTALK_SECRET (or keep WEBTALK_PRIVATE on 127.0.0.1)" >&2
      exit 2
    fi
    ;;
esac
exec "$bin" "$@"
