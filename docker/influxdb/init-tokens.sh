#!/bin/sh
# Runs once, when the influxdb container sets itself up (docker-entrypoint-initdb.d).
# Makes the least-privilege tokens: heatmon may read and write the heatmon bucket only;
# Grafana may only read it. Also maps the bucket for InfluxQL (the history view's reads).
# The tokens go to the shared "tokens" volume, readable by the two services that need them.
set -eu
bucket_id=$(influx bucket list --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
token_of() {
    sed -n 's/.*"token": *"\([^"]*\)".*/\1/p'
}
umask 027
influx auth create --org "$DOCKER_INFLUXDB_INIT_ORG" --description "heatmon service" \
    --read-bucket "$bucket_id" --write-bucket "$bucket_id" --json \
    | token_of > /var/lib/heatmon-tokens/heatmon-write.token
influx auth create --org "$DOCKER_INFLUXDB_INIT_ORG" --description "grafana read-only" \
    --read-bucket "$bucket_id" --json \
    | token_of > /var/lib/heatmon-tokens/grafana-read.token
influx v1 dbrp create --bucket-id "$bucket_id" --db "$DOCKER_INFLUXDB_INIT_BUCKET" \
    --rp autogen --default --org "$DOCKER_INFLUXDB_INIT_ORG"
chmod 0644 /var/lib/heatmon-tokens/*.token
