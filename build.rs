//! Records the build time, which is the default earliest valid timestamp and the point past
//! which the wall clock is trusted. `SOURCE_DATE_EPOCH` overrides it for reproducible builds.

use std::time::{SystemTime, UNIX_EPOCH};

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
}
