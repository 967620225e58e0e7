#!/usr/bin/env bash
# A minimal signal client in bash: registers like an original Go client (op REG, skycoin/net NORMAL frame),
# then keeps the connection open without ever answering. Used by tests and benchmarks that need many cheap
# registered processes. Without SIGNAL_CLIENT it just sleeps.
set -euo pipefail
if [[ -z "${SIGNAL_CLIENT:-}" || "${SIGNAL_CLIENT,,}" == "false" ]]; then
  exec sleep "${1:-100000}"
fi
addr=${SIGNAL_SERVER_ADDRESS:-127.0.0.1:7999}
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
body="{\"Id\":${SIGNAL_CLIENT_ID:-1}}"
len=$(( ${#body} + 1 ))
# NORMAL frame: 0x01, seq=1 (u32 BE), length (u32 BE), op 0x00 (REG), JSON body.
printf "\\x01\\x00\\x00\\x00\\x01\\x00\\x00\\x$(printf %02x $(( len >> 8 & 255 )))\\x$(printf %02x $(( len & 255 )))\\x00%s" "$body" >&3
echo "registered as ${SIGNAL_CLIENT_ID:-1} with ${addr}"
# Replies (ACK, REG echo) accumulate unread in the socket buffer; sleep keeps the connection open.
exec sleep "${1:-100000}"
