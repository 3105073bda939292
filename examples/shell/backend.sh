#!/usr/bin/env bash
# A webtalk backend in plain bash (its /dev/tcp, no other tool): create a user, whisper to it, shout to everyone.
# Run:  WEBTALK_PRIVATE=127.0.0.1:12344 bash backend.sh
set -euo pipefail
export LC_ALL=C # lengths count bytes, as the 5-digit frame header does

address=${WEBTALK_PRIVATE:-127.0.0.1:12344}
host=${address%:*}
port=${address##*:}
case $host in "" | 0.0.0.0) host=127.0.0.1 ;; esac
exec 3<>"/dev/tcp/$host/$port"

# call PAYLOAD: sends one frame and sets OK to the reply's data; on [error] prints it and fails.
call() {
  local header reply
  printf '%05d%s' "${#1}" "$1" >&3
  IFS= read -r -N 5 -u 3 header
  IFS= read -r -N "$((10#$header))" -u 3 reply
  case $reply in
    "[ok] "*) OK=${reply#"[ok] "} ;;
    *) echo "webtalk: $1 -> $reply" >&2 && return 1 ;;
  esac
}

call "[newuser]"
token=$OK # ID!SALT: hand it to the user's page, which logs in with it
user=${token%%!*}
echo "user $user: the page logs in with token $token"
call "[whisper] $user!Hello, user $user (from bash)"
echo "whisper to $user: $OK"
call "[shout] 1!Hello, everyone (from bash)"
echo "shout to channel 1: $OK"
printf '00000' >&3 # goodbye
exec 3<&-
