#!/bin/sh
# Mimics the registry redis image's entrypoint: options alone run redis-server with them, and
# redis-server gets --protected-mode no (its clients are other containers, not loopback) unless
# the arguments set protected mode themselves. Appended last so a config file stays first.
set -e
case "${1:-}" in
    -*) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = "redis-server" ]; then
    case " $* " in
        *" --protected-mode "* | " redis-server -v "* | " redis-server --version "* | \
            " redis-server -h "* | " redis-server --help "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi
exec "$@"
