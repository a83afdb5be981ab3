#!/bin/sh
# Renders the Alertmanager configuration from alertmanager.yml.tmpl and starts Alertmanager.
#
# The template is generated from routing.yaml (generate.py) and holds no secrets; here:
#   ${ALERT_WEBHOOK_<RECEIVER>}    <- that environment variable (a webhook URL)
#   ${ALERT_TELEGRAM_BOT_TOKEN}    <- that variable, or the file ALERT_TELEGRAM_BOT_TOKEN_FILE
#   ${ALERTMANAGER_TEMPLATES_DIR}  <- that variable, default: templates/ next to the template
# It refuses to start (exit 1, one line saying what to set) while a URL or the token is
# empty, or a URL points at *.invalid: an Alertmanager without a real receiver loses every
# alert silently. Alertmanager 0.25 reads neither URLs nor the Telegram token from files.
# Runs under the busybox shell of the prom/alertmanager image and under any POSIX sh.
#   --render-only   write the configuration and exit
# Other arguments go to Alertmanager.
set -eu

template=${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml.tmpl}
config=${ALERTMANAGER_CONFIG:-/alertmanager/alertmanager.yml}
binary=${ALERTMANAGER_BIN:-/bin/alertmanager}
ALERTMANAGER_TEMPLATES_DIR=${ALERTMANAGER_TEMPLATES_DIR:-$(cd "$(dirname "$template")" && pwd)/templates}

fail() {
  echo "render.sh: $*" >&2
  rm -f "$config.tmp"
  exit 1
}

if [ -z "${ALERT_TELEGRAM_BOT_TOKEN:-}" ] && [ -n "${ALERT_TELEGRAM_BOT_TOKEN_FILE:-}" ] \
    && [ -r "$ALERT_TELEGRAM_BOT_TOKEN_FILE" ]; then
  ALERT_TELEGRAM_BOT_TOKEN=$(tr -d ' \t\r\n' < "$ALERT_TELEGRAM_BOT_TOKEN_FILE")
fi

cp "$template" "$config.tmp"
for name in $(grep -o '\${ALERT[A-Z0-9_]*}' "$template" | tr -d '${}' | sort -u); do
  eval "value=\${$name:-}"  # $name is [A-Z0-9_] only, matched above
  case "$name" in
    ALERT_TELEGRAM_BOT_TOKEN)
      [ -n "$value" ] || fail "$name is not set: put the bot token (@BotFather) into the file" \
        "ALERT_TELEGRAM_BOT_TOKEN_FILE (compose: ALERT_TELEGRAM_BOT_TOKEN_FILE_HOST in .env)"
      ;;
    ALERTMANAGER_TEMPLATES_DIR) ;;
    *)
      [ -n "$value" ] || fail "$name is not set (see .env.example and deploy/README.md)"
      case "$value" in
        *.invalid|*.invalid/*|*.invalid:*|*.invalid\?*)
          fail "$name=$value goes nowhere (.invalid): set a real receiver URL" ;;
      esac
      ;;
  esac
  case "$value" in
    *"'"*) fail "$name contains a single quote" ;;
  esac
  escaped=$(printf '%s\n' "$value" | sed -e 's/[\\|&]/\\&/g')
  sed -i -e "s|\\\${$name}|$escaped|g" "$config.tmp"
done
mv "$config.tmp" "$config"

if [ "${1:-}" = "--render-only" ]; then
  exit 0
fi
exec "$binary" --config.file="$config" "$@"
