// heatmon: one-minute series for long-term views, as an InfluxDB 2.x task.
// Create the target bucket first:   influx bucket create --name heatmon_1m --retention 0
// then the task:                    influx task create --file docs/influxdb2-downsample.flux
// It mirrors the 1.x continuous queries in monitor/storage/downsample.py: the same
// measurements, fields and grouping. Not run against a real InfluxDB 2.x in heatmon's tests
// (2.x cannot be installed there); check it with `influx query` on your server first.
option task = {name: "heatmon-downsample-1m", every: 1m, offset: 10s}

// vitals_1m: mean, min, max, count of accepted readings per patient, kind and device
vitals = from(bucket: "heatmon")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "vitals" and (r._field == "value" or r._field == "flag"))
    |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
    |> filter(fn: (r) => (r.flag == "ok" or r.flag == "gap") and exists r.value)
    |> map(fn: (r) => ({r with _field: "value", _value: r.value}))
    |> group(columns: ["_measurement", "_field", "patient", "kind", "device"])

vitalsSummary = (agg, name) => vitals
    |> aggregateWindow(every: 1m, fn: agg, createEmpty: false)
    |> set(key: "_measurement", value: "vitals_1m")
    |> set(key: "_field", value: name)
    |> to(bucket: "heatmon_1m")

vitalsSummary(agg: mean, name: "mean")
vitalsSummary(agg: min, name: "min")
vitalsSummary(agg: max, name: "max")
vitalsSummary(agg: count, name: "count")

// thermal_1m: means and maxima of the derived state per patient and session
thermal = from(bucket: "heatmon")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "thermal")
    |> group(columns: ["_measurement", "_field", "patient", "session"])

thermalSummary = (field, agg, name) => thermal
    |> filter(fn: (r) => r._field == field)
    |> aggregateWindow(every: 1m, fn: agg, createEmpty: false)
    |> set(key: "_measurement", value: "thermal_1m")
    |> set(key: "_field", value: name)
    |> to(bucket: "heatmon_1m")

thermalSummary(field: "core_temp_c", agg: mean, name: "core_temp_c")
thermalSummary(field: "core_delta_c", agg: mean, name: "core_delta_c")
thermalSummary(field: "core_delta_c", agg: max, name: "core_delta_max_c")
thermalSummary(field: "level_rank", agg: max, name: "level_rank_max")
thermalSummary(field: "heart_rate_bpm", agg: mean, name: "heart_rate_bpm")
thermalSummary(field: "strain_index", agg: max, name: "strain_index_max")
