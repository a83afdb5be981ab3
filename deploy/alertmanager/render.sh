#!/bin/sh
# Renders the Alertmanager configuration from alertmanager.yml.tmpl and starts Alertmanager.
#
# Every ${ALERT_WEBHOOK_<RECEIVER>} in the template is replaced by that environment
# variable; a missing one stops the start. Runs under the busybox shell of the
# prom/alertmanager image and under any POSIX sh (the tests use it as is).
#   --render-only   write the configuration and exit
# Other arguments go to Alertmanager.
set -eu

template=${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml.tmpl}
config=${ALERTMANAGER_CONFIG:-/alertmanager/alertmanager.yml}
binary=${ALERTMANAGER_BIN:-/bin/alertmanager}

cp "$template" "$config.tmp"
for name in $(grep -o '\${ALERT_WEBHOOK_[A-Z0-9_]*}' "$template" | tr -d '${}' | sort -u); do
  eval "value=\${$name:-}"  # $name is [A-Z0-9_] only, matched above
  if [ -z "$value" ]; then
    echo "render.sh: $name is not set (see .env.example)" >&2
    rm -f "$config.tmp"
    exit 1
  fi
  escaped=$(printf '%s\n' "$value" | sed -e 's/[\\|&]/\\&/g')
  sed -i -e "s|\\\${$name}|$escaped|g" "$config.tmp"
done
mv "$config.tmp" "$config"

if [ "${1:-}" = "--render-only" ]; then
  exit 0
fi
exec "$binary" --config.file="$config" "$@"
