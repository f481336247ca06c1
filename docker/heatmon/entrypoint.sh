#!/bin/sh
# heatmon container entrypoint: reads the least-privilege InfluxDB token from the tokens
# volume, adds the caregiver login (argon2 hash of HEATMON_CAREGIVER_PASSWORD) to a
# private copy of the configuration, then runs the command.
set -eu
token_file=/var/lib/heatmon-tokens/heatmon-write.token
if [ -r "$token_file" ]; then
    HEATMON_INFLUXDB_TOKEN=$(cat "$token_file")
    export HEATMON_INFLUXDB_TOKEN
fi
config=/etc/heatmon/heatmon.toml
if [ -n "${HEATMON_CAREGIVER_PASSWORD:-}" ] && [ -r "$config" ]; then
    private=$(mktemp /tmp/heatmon.XXXXXX.toml)
    cp "$config" "$private"
    hash=$(printf '%s\n' "$HEATMON_CAREGIVER_PASSWORD" | heatmon web hash-password)
    {
        printf '\n[web.users.caregiver]\npassword_hash = "%s"\n' "$hash"
        printf 'patients = [%s]\n' "${HEATMON_CAREGIVER_PATIENTS:-}"
        printf '\n[web.history]\nurl = "%s"\ndatabase = "%s"\ntoken = "%s"\n' \
            "${HEATMON_INFLUXDB_URL}" "${INFLUXDB_BUCKET}" "${HEATMON_INFLUXDB_TOKEN:-}"
    } >> "$private"
    unset HEATMON_CAREGIVER_PASSWORD
    # Point the command at the private copy.
    set -- $(printf '%s\n' "$@" | sed "s|^$config\$|$private|")
fi
exec "$@"
