#!/bin/sh
# Writes the password file from the environment (hashed by mosquitto_passwd), then starts.
set -eu
: "${MQTT_HEATMON_PASSWORD:?set MQTT_HEATMON_PASSWORD}"
: "${MQTT_GATEWAY_PASSWORD:?set MQTT_GATEWAY_PASSWORD}"
umask 077
rm -f /mosquitto/data/passwd
touch /mosquitto/data/passwd
mosquitto_passwd -b /mosquitto/data/passwd heatmon "$MQTT_HEATMON_PASSWORD"
mosquitto_passwd -b /mosquitto/data/passwd gateway "$MQTT_GATEWAY_PASSWORD"
mosquitto_passwd -b /mosquitto/data/passwd healthcheck healthcheck
chown mosquitto:mosquitto /mosquitto/data/passwd
exec mosquitto -c /mosquitto/config/mosquitto.conf
