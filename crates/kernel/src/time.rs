//! Conversions between chrono and `google.protobuf.Timestamp`, and jittered durations.

/// `duration` ± 10 %, drawn anew on each call: timers many processes or connections start
/// together (connection ages) do not all fire at the same moment.
pub fn jittered(duration: std::time::Duration) -> std::time::Duration {
    duration.mul_f64(rand::random_range(0.9..=1.1))
}

/// A protobuf timestamp of `at`.
pub fn to_timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
