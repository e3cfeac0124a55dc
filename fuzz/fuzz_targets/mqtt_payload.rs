//! Feeds arbitrary bytes to every MQTT payload decoder, in lenient and strict NaN mode.
//! No input may panic, and no decoded number may be NaN or infinite.

#![no_main]

use caretaker_wire::payload::{
    decode, DecodeOptions, JsonPaths, PayloadFormat, SampleValue, ValuePath,
};
use libfuzzer_sys::fuzz_target;

fn path(text: &str) -> ValuePath {
    ValuePath::parse(text).expect("the fuzz target's paths are valid")
}

fn formats() -> Vec<PayloadFormat> {
    vec![
        PayloadFormat::Number,
        PayloadFormat::Senml,
        PayloadFormat::Json(JsonPaths {
            values: vec![path("v")],
            timestamp: Some(path("ts")),
            sensor_id: None,
        }),
        PayloadFormat::Json(JsonPaths {
            values: vec![path("*.Temperature"), path("*"), path("data.0.v")],
            timestamp: Some(path("Time")),
            sensor_id: Some(path("id")),
        }),
    ]
}

fuzz_target!(|payload: &[u8]| {
    for format in formats() {
        for lenient_nan in [true, false] {
            let Ok(samples) = decode(&format, payload, DecodeOptions { lenient_nan }) else {
                continue;
            };
            for sample in samples {
                if let SampleValue::Number(number) = sample.value {
                    assert!(
                        number.is_finite(),
                        "decoded a non-finite number from {payload:?}"
                    );
                }
            }
        }
    }
});
