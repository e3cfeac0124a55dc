//! Records the build time, which is the default earliest valid timestamp and the point past
//! which the wall clock is trusted. `SOURCE_DATE_EPOCH` overrides it for reproducible builds.
//!
//! Also compresses the triage model `models/triage.json` with DEFLATE for the binary, which
//! inflates it once when the classifier loads. Compressed, the JSON takes about a third of its
//! size (1.53 of 5.08 MB).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

const TRIAGE_MODEL: &str = "models/triage.json";

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|since| since.as_secs() as i64)
                .unwrap_or(0)
        });
    // Whole days, so that rebuilding on the same day does not change the binary.
    let day = epoch - epoch.rem_euclid(86_400);
    println!("cargo:rustc-env=CARETAKER_BUILD_EPOCH={day}");

    println!("cargo:rerun-if-changed={TRIAGE_MODEL}");
    let json = std::fs::read(TRIAGE_MODEL).unwrap_or_else(|e| {
        panic!("failed to read {TRIAGE_MODEL}: {e}. Rebuild it with `caretaker train-triage`")
    });
    let compressed = miniz_oxide::deflate::compress_to_vec(&json, 9);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let path = out.join("triage.json.deflate");
    std::fs::write(&path, compressed)
        .unwrap_or_else(|e| panic!("failed to write {}: {e}", path.display()));
}
