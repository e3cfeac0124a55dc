use super::*;

const MINUTE_MS: i64 = 60_000;
/// 2024-01-01T00:00:00Z, a Monday.
const START_MS: i64 = 1_704_067_200_000;

/// Reproducible noise, roughly normal with standard deviation `sigma`.
struct Noise(fastrand::Rng);

impl Noise {
    fn new(seed: u64) -> Self {
        Noise(fastrand::Rng::with_seed(seed))
    }

    fn next(&mut self, sigma: f64) -> f64 {
        // The sum of 12 uniform values minus 6 has mean 0 and variance 1.
        let sum: f64 = (0..12).map(|_| self.0.f64()).sum();
        (sum - 6.0) * sigma
    }
}

/// Feeds readings one minute apart, starting at minute `start`, and returns the verdicts.
fn feed(
    detector: &mut SensorDetector,
    start: usize,
    values: impl IntoIterator<Item = f64>,
) -> Vec<StreamVerdict> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let ts = START_MS + (start + index) as i64 * MINUTE_MS;
            detector.update(ts, Some(value))
        })
        .collect()
}

fn anomalies(verdicts: &[StreamVerdict]) -> Vec<usize> {
    verdicts
        .iter()
        .enumerate()
        .filter(|(_, verdict)| verdict.is_anomaly)
        .map(|(index, _)| index)
        .collect()
}

fn noisy(seed: u64, level: f64, sigma: f64, len: usize) -> Vec<f64> {
    let mut noise = Noise::new(seed);
    (0..len).map(|_| level + noise.next(sigma)).collect()
}

/// On normal noise the detector raises about one false alarm per 27 000 readings (new records
/// of its statistics), so a training run of 2000 readings may contain one.
const NOISE_ALARMS_PER_2000: usize = 1;

fn trained_detector(seed: u64) -> SensorDetector {
    let mut detector = SensorDetector::new(StreamConfig::default());
    let verdicts = feed(&mut detector, 0, noisy(seed, 20.0, 0.5, 2000));
    let flagged = anomalies(&verdicts);
    assert!(
        flagged.len() <= NOISE_ALARMS_PER_2000,
        "noise alone was flagged at {flagged:?}"
    );
    detector
}

#[test]
fn noise_alone_is_rarely_flagged() {
    let mut detector = SensorDetector::new(StreamConfig::default());
    let verdicts = feed(&mut detector, 0, noisy(1, 20.0, 0.5, 20_000));
    let flagged = anomalies(&verdicts);
    assert!(
        flagged.len() <= 6,
        "{} false alarms: {flagged:?}",
        flagged.len()
    );
}

#[test]
fn spike_is_flagged_once() {
    let mut detector = trained_detector(11);
    let mut values = noisy(12, 20.0, 0.5, 50);
    values[10] = 35.0;
    let verdicts = feed(&mut detector, 2000, values);
    assert_eq!(anomalies(&verdicts), vec![10]);
    assert_eq!(verdicts[10].kind, Some(FaultKind::Spike));
    assert!(verdicts[10].changepoint);
    let expected = verdicts[10].expected.unwrap();
    assert!((expected - 20.0).abs() < 0.5, "expected {expected}");
}

#[test]
fn step_is_flagged_then_learned() {
    let mut detector = trained_detector(21);
    let verdicts = feed(&mut detector, 2000, noisy(22, 26.0, 0.5, 600));
    let flagged = anomalies(&verdicts);
    assert!(
        flagged.first().is_some_and(|&first| first < LEVEL_SPAN),
        "step flagged at {flagged:?}"
    );
    assert!(
        verdicts[..2 * LEVEL_SPAN]
            .iter()
            .any(|verdict| verdict.changepoint),
        "no changepoint at the step"
    );
    assert_eq!(anomalies(&verdicts[300..]), Vec::<usize>::new());
    let expected = verdicts[599].expected.unwrap();
    assert!(
        (expected - 26.0).abs() < 0.5,
        "level not learned: {expected}"
    );
}

#[test]
fn slow_drift_is_not_flagged() {
    let mut detector = SensorDetector::new(StreamConfig::default());
    let mut noise = Noise::new(31);
    // 10 units over 5000 readings: 20 noise standard deviations, 0.002 per reading.
    let values: Vec<f64> = (0..5000)
        .map(|index| 20.0 + index as f64 * 0.002 + noise.next(0.5))
        .collect();
    let verdicts = feed(&mut detector, 0, values);
    let flagged = anomalies(&verdicts);
    // The noise alone accounts for about one alarm per 5000 readings.
    assert!(flagged.len() <= 2, "drift flagged at {flagged:?}");
    let expected = verdicts[4999].expected.unwrap();
    assert!(
        (expected - 30.0).abs() < 1.0,
        "drift not followed: {expected}"
    );
}

#[test]
fn flat_line_is_stuck() {
    let mut detector = trained_detector(41);
    let verdicts = feed(&mut detector, 2000, vec![20.3; 200]);
    assert_eq!(detector.active_fault(), Some(FaultKind::Stuck));
    let mut verdicts = verdicts;
    verdicts.extend(feed(&mut detector, 2200, noisy(42, 20.0, 0.5, 20)));
    let stuck: Vec<usize> = (0..verdicts.len())
        .filter(|&index| verdicts[index].kind == Some(FaultKind::Stuck))
        .collect();
    assert!(!stuck.is_empty(), "flat line not reported");
    let flagged = anomalies(&verdicts[..200]);
    assert!(!flagged.is_empty(), "flat line not flagged");
    assert!(
        flagged[0] < 2 * MIN_STUCK_RUN as usize,
        "flagged late: {flagged:?}"
    );
    assert!(
        flagged.len() <= 2,
        "one stuck sensor raised {} alarms",
        flagged.len()
    );
    assert_eq!(detector.active_fault(), None);
    assert!(verdicts[200].changepoint, "recovery is no changepoint");
    assert_eq!(verdicts[200].kind, Some(FaultKind::Stuck));
}

#[test]
fn sensor_with_flat_periods_learns_them() {
    // A counter that is 0 for 40 readings between bursts must not be reported stuck.
    let mut detector = SensorDetector::new(StreamConfig::default());
    let values: Vec<f64> = (0..3000)
        .map(|index| {
            if index % 50 < 40 {
                0.0
            } else {
                5.0 + (index % 7) as f64
            }
        })
        .collect();
    let verdicts = feed(&mut detector, 0, values);
    let stuck = verdicts[200..]
        .iter()
        .filter(|verdict| verdict.kind == Some(FaultKind::Stuck))
        .count();
    assert_eq!(stuck, 0);
}

#[test]
fn silence_is_reported_once() {
    let mut detector = SensorDetector::new(StreamConfig::default());
    feed(&mut detector, 0, noisy(51, 20.0, 0.5, 100));
    let last = START_MS + 99 * MINUTE_MS;
    assert_eq!(detector.expected_interval_ms(), Some(MINUTE_MS as f64));
    assert_eq!(detector.check_silence(last + 2 * MINUTE_MS), None);
    let verdict = detector.check_silence(last + 4 * MINUTE_MS).unwrap();
    assert!(verdict.is_anomaly);
    assert_eq!(verdict.kind, Some(FaultKind::Missing));
    assert_eq!(detector.check_silence(last + 5 * MINUTE_MS), None);
    assert_eq!(detector.active_fault(), Some(FaultKind::Missing));
    let back = detector.update(last + 6 * MINUTE_MS, Some(20.0));
    assert!(back.changepoint);
    assert_eq!(back.kind, Some(FaultKind::Missing));
    assert!(!back.is_anomaly, "the silence was reported already");
}

#[test]
fn silence_uses_configured_interval() {
    let config = StreamConfig {
        expected_interval_ms: Some(10 * MINUTE_MS),
        ..StreamConfig::default()
    };
    let mut detector = SensorDetector::new(config);
    detector.update(START_MS, Some(1.0));
    assert_eq!(detector.check_silence(START_MS + 25 * MINUTE_MS), None);
    let verdict = detector.check_silence(START_MS + 31 * MINUTE_MS).unwrap();
    assert_eq!(verdict.kind, Some(FaultKind::Missing));
}

#[test]
fn missing_values_are_reported() {
    let mut detector = trained_detector(61);
    let ts = START_MS + 2000 * MINUTE_MS;
    let first = detector.update(ts, None);
    let second = detector.update(ts + MINUTE_MS, Some(f64::NAN));
    let third = detector.update(ts + 2 * MINUTE_MS, None);
    assert!(!first.is_anomaly);
    assert!(!second.is_anomaly);
    assert!(third.is_anomaly);
    assert_eq!(third.kind, Some(FaultKind::Missing));
}

#[test]
fn replay_gap_is_reported_on_next_reading() {
    let mut detector = trained_detector(65);
    let verdict = detector.update(START_MS + 2100 * MINUTE_MS, Some(20.0));
    assert!(verdict.is_anomaly);
    assert!(verdict.changepoint);
    assert_eq!(verdict.kind, Some(FaultKind::Missing));
}

#[test]
fn seasonal_anomaly_inside_cycle() {
    let mut detector = SensorDetector::new(StreamConfig::default());
    let mut noise = Noise::new(71);
    // A daily cycle between 10 and 30, read every 5 minutes for 12 days.
    let cycle = |minute: usize| {
        let phase = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
        20.0 + 10.0 * phase.sin()
    };
    let mut verdicts = Vec::new();
    for step in 0..12 * 288 {
        let minute = step * 5;
        let ts = START_MS + minute as i64 * MINUTE_MS;
        verdicts.push(detector.update(ts, Some(cycle(minute) + noise.next(0.3))));
    }
    assert_eq!(anomalies(&verdicts[600..]), Vec::<usize>::new());

    // At 18:00 the cycle is at its low of 10; 25 is normal at noon but not at this hour.
    let minute = 12 * 1440 + 18 * 60;
    let ts = START_MS + minute as i64 * MINUTE_MS;
    let verdict = detector.update(ts, Some(25.0));
    assert!(verdict.is_anomaly, "score {}", verdict.score);
    assert_eq!(verdict.kind, Some(FaultKind::Seasonal));
    let expected = verdict.expected.unwrap();
    assert!((expected - 10.0).abs() < 1.5, "expected {expected}");
}

#[test]
fn out_of_range_is_flagged_at_once() {
    let config = StreamConfig {
        min: Some(0.0),
        max: Some(100.0),
        ..StreamConfig::default()
    };
    let mut detector = SensorDetector::new(config);
    detector.update(START_MS, Some(50.0));
    let verdict = detector.update(START_MS + MINUTE_MS, Some(150.0));
    assert!(verdict.is_anomaly, "flagged even during the warm-up");
    assert_eq!(verdict.score, 1.0);
    assert!(verdict.changepoint);
    assert_eq!(verdict.kind, Some(FaultKind::OutOfRange));
    let low = detector.update(START_MS + 2 * MINUTE_MS, Some(-1.0));
    assert!(low.is_anomaly);
    assert!(!low.changepoint, "the fault goes on");
    assert_eq!(detector.active_fault(), Some(FaultKind::OutOfRange));
    let back = detector.update(START_MS + 3 * MINUTE_MS, Some(50.0));
    assert!(!back.is_anomaly);
    assert!(back.changepoint);
    assert_eq!(back.kind, Some(FaultKind::OutOfRange));
}

#[test]
fn variance_increase_is_flagged() {
    let mut detector = trained_detector(81);
    let verdicts = feed(&mut detector, 2000, noisy(82, 20.0, 1.5, 100));
    let flagged = anomalies(&verdicts);
    assert!(
        flagged.first().is_some_and(|&first| first < 32),
        "flagged at {flagged:?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|verdict| verdict.is_anomaly && verdict.kind == Some(FaultKind::Variance)),
        "no verdict of kind variance: {:?}",
        flagged
            .iter()
            .map(|&index| verdicts[index].kind)
            .collect::<Vec<_>>()
    );
}

#[test]
fn variance_drop_is_flagged() {
    let mut detector = trained_detector(85);
    let verdicts = feed(&mut detector, 2000, noisy(86, 20.0, 0.02, 100));
    let flagged = anomalies(&verdicts);
    assert!(!flagged.is_empty(), "variance drop not flagged");
    assert_eq!(verdicts[flagged[0]].kind, Some(FaultKind::Variance));
}

#[test]
fn burst_of_outliers_is_flagged() {
    // Isolated spikes are this sensor's normal; five within 16 readings are not.
    let mut detector = SensorDetector::new(StreamConfig::default());
    let pattern = |index: usize| {
        if index.is_multiple_of(100) || index % 100 == 6 {
            20.0
        } else {
            0.0
        }
    };
    let verdicts = feed(&mut detector, 0, (0..2000).map(pattern));
    assert_eq!(anomalies(&verdicts[600..]), Vec::<usize>::new());
    let burst = (0..30).map(|index| if index % 4 == 0 { 20.0 } else { 0.0 });
    let verdicts = feed(&mut detector, 2000, burst);
    assert!(!anomalies(&verdicts).is_empty(), "burst not flagged");
}

#[test]
fn warmup_never_flags() {
    let mut detector = SensorDetector::new(StreamConfig::default());
    let mut values = noisy(91, 20.0, 0.5, 40);
    values[30] = 1000.0;
    let verdicts = feed(&mut detector, 0, values);
    assert_eq!(anomalies(&verdicts), Vec::<usize>::new());
    assert!(verdicts.iter().all(|verdict| verdict.score == 0.0));
}

#[test]
fn sensitivity_scales_score() {
    let mut values = noisy(95, 20.0, 0.5, 2000);
    values[1500] = 30.0;
    let mut normal = SensorDetector::new(StreamConfig::default());
    let mut keen = SensorDetector::new(StreamConfig {
        sensitivity: 2.0,
        ..StreamConfig::default()
    });
    let normal = feed(&mut normal, 0, values.clone());
    let keen = feed(&mut keen, 0, values);
    assert!(keen[1500].score > normal[1500].score);
}

#[test]
fn memory_stays_under_4_kib() {
    let detector = SensorDetector::new(StreamConfig::default());
    assert_eq!(
        detector.memory_bytes(),
        std::mem::size_of::<SensorDetector>()
    );
    assert!(
        detector.memory_bytes() < 4096,
        "{} bytes per sensor",
        detector.memory_bytes()
    );
}

#[test]
fn fault_kind_names() {
    let names = [
        (FaultKind::OutOfRange, "out_of_range"),
        (FaultKind::Stuck, "stuck"),
        (FaultKind::Missing, "missing"),
        (FaultKind::Spike, "spike"),
        (FaultKind::LevelShift, "level_shift"),
        (FaultKind::Variance, "variance"),
        (FaultKind::Seasonal, "seasonal"),
    ];
    for (kind, name) in names {
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
    }
}

#[test]
fn score_series_skips_warmup_rows() {
    let values = noisy(99, 20.0, 0.5, 1000);
    let mut series = Series {
        timestamps: (0..1000).map(|index| index.to_string()).collect(),
        times_ms: (0..1000)
            .map(|index| Some(START_MS + index * MINUTE_MS))
            .collect(),
        features: vec!["value".to_string()],
        columns: vec![values.into_iter().map(Some).collect()],
    };
    series.columns[0][300] = Some(100.0);
    series.columns[0][800] = Some(100.0);
    let outputs = score_series(&series, 500);
    assert_eq!(outputs.len(), 1000);
    assert!(outputs[..500]
        .iter()
        .all(|row| row.score == 0.0 && !row.is_anomaly));
    assert!(outputs[800].is_anomaly);
    assert!(outputs.iter().all(|row| (0.0..=1.0).contains(&row.score)));
}

#[test]
fn tail_surprise_grows_beyond_history() {
    let mut tail = tail::TailHistogram::new(1000);
    for index in 0..500 {
        tail.learn((index % 10) as f64 * 0.1);
    }
    let common = tail.surprise(0.0, 1.0);
    let edge = tail.surprise(0.95, 1.0);
    let beyond = tail.surprise(2.0, 1.0);
    let far = tail.surprise(5.0, 1.0);
    assert!(common < 0.1, "common {common}");
    assert!(edge < beyond, "edge {edge} beyond {beyond}");
    assert!(beyond < far, "beyond {beyond} far {far}");
    assert!(beyond > 2.5, "beyond {beyond}");
    let overlapping = tail.surprise(2.0, 4.0);
    assert!(
        overlapping < beyond,
        "overlapping {overlapping} beyond {beyond}"
    );
}

#[test]
fn robust_level_ignores_spikes() {
    let mut level = robust::RobustLevel::new(64);
    let mut noise = Noise::new(101);
    for index in 0..2000 {
        let value = if index % 20 == 0 {
            100.0
        } else {
            5.0 + noise.next(1.0)
        };
        level.learn(value);
    }
    assert!((level.level() - 5.0).abs() < 0.5, "level {}", level.level());
    // The MAD of a normal distribution is 0.67 standard deviations.
    assert!(
        (0.4..1.2).contains(&level.spread()),
        "spread {}",
        level.spread()
    );
}

#[test]
fn extreme_values_keep_scores_finite() {
    let mut detector = SensorDetector::new(StreamConfig::default());
    let mut values = noisy(111, 20.0, 0.5, 500);
    for (index, value) in values.iter_mut().enumerate().skip(200) {
        if index % 37 == 0 {
            *value = if index % 2 == 0 { 1e308 } else { -1e308 };
        }
    }
    let verdicts = feed(&mut detector, 0, values);
    for verdict in &verdicts {
        assert!(
            (0.0..=1.0).contains(&verdict.score),
            "score {}",
            verdict.score
        );
        assert!(verdict.expected.is_none_or(f64::is_finite));
    }
    let after = detector.update(START_MS + 600 * MINUTE_MS, Some(20.0));
    assert!((0.0..=1.0).contains(&after.score));
}

#[test]
fn time_going_backwards_is_tolerated() {
    let mut detector = trained_detector(121);
    let earlier = detector.update(START_MS, Some(20.0));
    assert!(!earlier.is_anomaly);
    assert_eq!(detector.expected_interval_ms(), Some(MINUTE_MS as f64));
}

#[test]
fn score_series_with_applies_limits() {
    let series = Series {
        timestamps: (0..3).map(|index| index.to_string()).collect(),
        times_ms: (0..3)
            .map(|index| Some(START_MS + index * MINUTE_MS))
            .collect(),
        features: vec!["value".to_string()],
        columns: vec![vec![Some(5.0), Some(500.0), None]],
    };
    let config = StreamConfig {
        max: Some(100.0),
        ..StreamConfig::default()
    };
    let outputs = score_series_with(&series, 0, config);
    assert!(!outputs[0].is_anomaly);
    assert!(outputs[1].is_anomaly);
    assert_eq!(outputs[1].score, 1.0);
    assert!(!outputs[2].is_anomaly);
}

/// Counts the alarms that the default detector raises on normal noise (standard deviation 0.5
/// around 20), one run per seed, each reading a minute apart. With `seasonal` the noise rides
/// on a daily sine of amplitude 5, read every 5 minutes. The first 1000 readings of each run
/// are not counted. Returns the alarms and the readings counted.
fn noise_alarm_count(seasonal: bool, seeds: std::ops::Range<u64>, len: usize) -> (usize, usize) {
    let mut alarms = 0;
    let mut judged = 0;
    for seed in seeds {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut detector = SensorDetector::new(StreamConfig::default());
        for step in 0..len {
            // Box-Muller: an exact normal deviate, tails included.
            let radius = (-2.0 * (1.0 - rng.f64()).ln()).sqrt();
            let gauss = radius * (std::f64::consts::TAU * rng.f64()).cos();
            let minute = step * if seasonal { 5 } else { 1 };
            let phase = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            let base = if seasonal {
                20.0 + 5.0 * phase.sin()
            } else {
                20.0
            };
            let ts = START_MS + minute as i64 * MINUTE_MS;
            let verdict = detector.update(ts, Some(base + 0.5 * gauss));
            if step >= 1000 {
                judged += 1;
                alarms += usize::from(verdict.is_anomaly);
            }
        }
    }
    (alarms, judged)
}

#[test]
fn gaussian_noise_alarm_rate() {
    let (alarms, judged) = noise_alarm_count(false, 1..5, 50_000);
    eprintln!("gaussian: {alarms} alarms in {judged} readings");
    // 5 alarms when the bound was set. On five seeds of 100 000 readings the detector raised
    // 18, against 46 without the discount of lone records. The bound is one per 20 000.
    assert!(
        alarms * 20_000 <= judged,
        "{alarms} alarms in {judged} readings"
    );
}

#[test]
fn seasonal_noise_alarm_rate() {
    let (alarms, judged) = noise_alarm_count(true, 1..5, 50_000);
    eprintln!("seasonal: {alarms} alarms in {judged} readings");
    // 1 alarm when the bound was set. On five seeds of 100 000 readings the detector raised
    // 5, against 11 without the discount of lone records. The bound is one per 50 000.
    assert!(
        alarms * 50_000 <= judged,
        "{alarms} alarms in {judged} readings"
    );
}
