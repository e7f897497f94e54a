//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::api::sensor_rows;
use super::ctx::{blocking, Ctx};
use crate::event::now_ms;

pub async fn metrics(State(ctx): State<Ctx>) -> Response {
    let store = ctx.store.clone();
    let outbox = match blocking(move || store.outbox_depth().map_err(|e| e.to_string())).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&ctx, outbox),
    )
        .into_response()
}

/// One metric family: its help, type and samples (labels, value).
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
            return;
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help).sample(name, &[], value);
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(ctx: &Ctx, (depth, oldest): (u64, Option<i64>)) -> String {
    let mut out = String::with_capacity(4096);
    let mut f = Family { out: &mut out };
    let now = now_ms();
    let c = ctx.live.counters();
    let link = ctx.link.borrow().clone();
    f.one(
        "coldgate_uptime_seconds",
        "gauge",
        "Seconds since the data path started.",
        ctx.live.uptime().as_secs(),
    );
    f.one(
        "coldgate_readings_received_total",
        "counter",
        "Readings ingest accepted from the sources.",
        c.readings_received,
    );
    f.one(
        "coldgate_readings_ingested_total",
        "counter",
        "Readings committed to the database.",
        c.readings_committed,
    );
    f.one(
        "coldgate_events_raised_total",
        "counter",
        "Events committed to the database (and the outbox).",
        c.events_committed,
    );
    f.one(
        "coldgate_commits_total",
        "counter",
        "Database commits by ingest.",
        c.commits,
    );
    f.one(
        "coldgate_commit_failures_total",
        "counter",
        "Database commits that failed and were retried.",
        c.commit_failures,
    );
    f.one(
        "coldgate_outbox_depth",
        "gauge",
        "Events waiting for the broker's acknowledgement.",
        depth,
    );
    f.one(
        "coldgate_outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest unacknowledged event (0 when the outbox is empty).",
        oldest.map_or(0, |o| now.saturating_sub(o).max(0) / 1000),
    );
    f.one(
        "coldgate_mqtt_connected",
        "gauge",
        "1 while connected to the MQTT broker.",
        u8::from(link.connected),
    );
    f.one(
        "coldgate_mqtt_verified",
        "gauge",
        "1 once the broker delivered this gateway's own status back on this connection (a PUBACK alone does not prove delivery: an ACL may drop what it acknowledges).",
        u8::from(link.connected && link.verified),
    );
    f.one(
        "coldgate_publish_errors_total",
        "counter",
        "MQTT connection attempts that failed and connections lost.",
        link.publish_errors,
    );
    if let Some(expires) = link.client_cert_expires_ms {
        f.one(
            "coldgate_client_cert_expiry_timestamp_seconds",
            "gauge",
            "notAfter of the MQTT client certificate, seconds since the epoch.",
            expires / 1000,
        );
    }

    let modbus = ctx.modbus.snapshot();
    f.head(
        "coldgate_modbus_errors_total",
        "counter",
        "Failed Modbus requests per sensor and kind.",
    );
    for (sensor, h) in &modbus {
        for (kind, n) in [
            ("timeout", h.timeouts),
            ("crc", h.crc_errors),
            ("framing", h.framing_errors),
            ("exception", h.exceptions),
            ("link", h.link_errors),
        ] {
            f.sample(
                "coldgate_modbus_errors_total",
                &[("sensor", sensor), ("kind", kind)],
                n,
            );
        }
    }
    f.head(
        "coldgate_modbus_polls_ok_total",
        "counter",
        "Modbus polls that returned registers, per sensor.",
    );
    for (sensor, h) in &modbus {
        f.sample(
            "coldgate_modbus_polls_ok_total",
            &[("sensor", sensor)],
            h.successes,
        );
    }

    let ble = ctx.ble.snapshot();
    f.one(
        "coldgate_ble_advertisements_seen_total",
        "counter",
        "BLE advertisements the scanner delivered.",
        ble.advertisements_seen,
    );
    f.one(
        "coldgate_ble_advertisements_rejected_total",
        "counter",
        "BLE advertisements from configured sensors that were undecodable, unauthentic or replayed.",
        ble.advertisements_rejected,
    );
    f.one(
        "coldgate_ble_advertisements_ignored_total",
        "counter",
        "BLE advertisements from other devices or without a measurement.",
        ble.advertisements_ignored,
    );
    f.one(
        "coldgate_ble_advertisements_duplicate_total",
        "counter",
        "BLE advertisements repeating one already counted.",
        ble.advertisements_duplicate,
    );
    f.head(
        "coldgate_ble_rssi_dbm",
        "gauge",
        "RSSI of each BLE sensor's last authentic advertisement.",
    );
    for (sensor, d) in &ble.sensors {
        if let Some(rssi) = d.rssi {
            f.sample("coldgate_ble_rssi_dbm", &[("sensor", sensor)], rssi);
        }
    }

    let rows = sensor_rows(ctx, now);
    f.head(
        "coldgate_sensor_age_seconds",
        "gauge",
        "Seconds since the gateway last received a reading of the sensor (absent: never).",
    );
    for r in &rows {
        if let Some(age) = r.age_s {
            f.sample("coldgate_sensor_age_seconds", &[("sensor", &r.id)], age);
        }
    }
    f.head(
        "coldgate_sensor_value",
        "gauge",
        "Each sensor's last value per quantity.",
    );
    for r in &rows {
        for (q, v) in &r.values {
            if let Some(value) = v.get("value").and_then(serde_json::Value::as_f64) {
                f.sample(
                    "coldgate_sensor_value",
                    &[("sensor", &r.id), ("quantity", q)],
                    value,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
    }
}
