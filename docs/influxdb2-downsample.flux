// heatmon: one-minute series for long-term views, as an InfluxDB 2.x task.
// Create the target bucket first:   influx bucket create --name heatmon_1m --retention 0
// then the task:                    influx task create --file docs/influxdb2-downsample.flux
// It mirrors the 1.x continuous queries in monitor/storage/downsample.py.
option task = {name: "heatmon-downsample-1m", every: 1m, offset: 10s}

vitals = from(bucket: "heatmon")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "vitals" and r._field == "value")
    |> filter(fn: (r) => r.flag == "ok" or r.flag == "gap")

vitals |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
    |> set(key: "_measurement", value: "vitals_1m") |> set(key: "_field", value: "mean")
    |> to(bucket: "heatmon_1m")
vitals |> aggregateWindow(every: 1m, fn: min, createEmpty: false)
    |> set(key: "_measurement", value: "vitals_1m") |> set(key: "_field", value: "min")
    |> to(bucket: "heatmon_1m")
vitals |> aggregateWindow(every: 1m, fn: max, createEmpty: false)
    |> set(key: "_measurement", value: "vitals_1m") |> set(key: "_field", value: "max")
    |> to(bucket: "heatmon_1m")

from(bucket: "heatmon")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "thermal")
    |> filter(fn: (r) => r._field == "core_temp_c" or r._field == "core_delta_c"
        or r._field == "heart_rate_bpm")
    |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
    |> set(key: "_measurement", value: "thermal_1m")
    |> to(bucket: "heatmon_1m")
