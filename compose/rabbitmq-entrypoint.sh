#!/bin/sh
# Mimics the registry rabbitmq image's entrypoint where the harness relies on it: options alone
# run rabbitmq-server with them, and long node names are used when the hostname has a domain.
set -e
case "${1:-}" in
    -*) set -- rabbitmq-server "$@" ;;
esac
if [ -z "${RABBITMQ_USE_LONGNAME:-}" ] && [ "$(hostname)" != "$(hostname -s)" ]; then
    export RABBITMQ_USE_LONGNAME=true
fi
exec "$@"
