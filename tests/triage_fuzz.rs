//! Any input gets a valid triage and never a panic: empty, very long, binary-looking, emoji
//! only, right-to-left and arbitrary Unicode text.

use caretaker::triage::{classify, redact, Triage};
use proptest::prelude::*;

const INTENTS: &[&str] = &[
    "maintenance_request",
    "rent_payment",
    "lease",
    "complaint",
    "booking",
    "general_question",
    "status_followup",
    "emergency",
];
const URGENCIES: &[&str] = &["emergency", "urgent", "routine", "none"];
const PII: &[&str] = &["phone", "email", "cpr", "iban", "name"];

fn assert_valid(t: &Triage, case: &str) {
    assert!(
        t.language == "da" || t.language == "en",
        "language of {case}: {}",
        t.language
    );
    assert!(
        INTENTS.contains(&t.intent.as_str()),
        "intent of {case}: {}",
        t.intent
    );
    assert!(
        URGENCIES.contains(&t.urgency.as_str()),
        "urgency of {case}: {}",
        t.urgency
    );
    assert!(
        t.pii.iter().all(|k| PII.contains(&k.as_str())),
        "pii of {case}: {:?}",
        t.pii
    );
    assert!(
        (0.0..=1.0).contains(&t.confidence),
        "confidence of {case}: {}",
        t.confidence
    );
    assert_eq!(
        t.intent == "emergency",
        t.urgency == "emergency",
        "emergency of {case}"
    );
    assert!(t.explanation.is_object(), "explanation of {case}");
    assert!(serde_json::to_string(t).is_ok(), "serialising {case}");
}

#[test]
fn edge_inputs_get_valid_answers() {
    let megabyte = "vandet drypper i 2. tv og der lugter af gas ".repeat((1 << 20) / 44 + 1);
    let binary: String = (0u8..=255).map(char::from).cycle().take(10_000).collect();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("whitespace", " \n\t\r ".into()),
        ("1 MB", megabyte),
        ("binary-looking", binary),
        ("emoji only", "🔥🔥🚿💧😡🙏".into()),
        (
            "right-to-left",
            "שלום, יש דליפה במטבח مرحبا يوجد تسرب".into(),
        ),
        (
            "control characters",
            "\u{0}\u{1}\u{7f}\u{202e}abc\u{200b}".into(),
        ),
        ("digits only", "2. tv 1234567890 +45 00 00 00 00".into()),
    ];
    for (case, text) in &cases {
        let t = classify(text);
        assert_valid(&t, case);
        let _ = redact(text);
    }
    let long = &cases[2].1;
    assert!(
        classify(long).explanation["truncated"].is_string(),
        "the explanation of a 1 MB message marks it as truncated"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_text_gets_a_valid_answer(text in any::<String>()) {
        let t = classify(&text);
        assert_valid(&t, "generated text");
        let redacted = redact(&text);
        prop_assert!(redacted.len() <= text.len() + 8 * text.len().max(1));
    }

    #[test]
    fn message_like_text_gets_a_valid_answer(
        text in "[a-zA-ZæøåÆØÅ0-9 .,!?@+\\-\n]{0,300}"
    ) {
        assert_valid(&classify(&text), "generated message");
    }
}
