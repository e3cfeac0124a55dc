//! Table tests of triage through its public API: emergencies with negation and hypotheticals,
//! both languages, missing diacritics, mixed language, several issues, units, personal data.

use caretaker::triage::{classify, redact};

#[test]
fn emergencies_in_both_languages() {
    let cases = [
        (
            "Der kommer røg ud af stikkontakten i stuen!! 3. th",
            "electrical",
        ),
        ("Der kommer roeg ud af stikkontakten, hjaelp", "electrical"),
        ("Det lugter voldsomt af gas i opgangen", "gas"),
        (
            "There is water pouring through the kitchen ceiling, a pipe has burst upstairs",
            "plumbing",
        ),
        (
            "We are stuck in the lift between the 3rd and 4th floor",
            "elevator",
        ),
        ("The tumble dryer is on fire, we are outside", "appliance"),
    ];
    for (text, category) in cases {
        let t = classify(text);
        assert_eq!(t.urgency, "emergency", "urgency of: {text}");
        assert_eq!(t.intent, "emergency", "intent of: {text}");
        assert_eq!(t.category.as_deref(), Some(category), "category of: {text}");
        assert!(t.needs_human, "needs_human of: {text}");
    }
}

#[test]
fn negated_and_hypothetical_danger_is_no_emergency() {
    let cases = [
        "No smoke or anything, but the smoke alarm in the hall beeps every minute. Battery?",
        "Det lugter ikke af gas, men komfuret vil ikke tænde",
        "What should we do in case of fire? Is there an evacuation plan?",
        "Hvis der går ild i kælderen, hvor er brandslukkeren så?",
        "It's not an emergency, but the lift is noisy between floors",
    ];
    for text in cases {
        let t = classify(text);
        assert_ne!(t.urgency, "emergency", "urgency of: {text}");
        assert_ne!(t.intent, "emergency", "intent of: {text}");
    }
}

#[test]
fn most_urgent_issue_wins() {
    let t = classify(concat!(
        "Hi, the bathroom light flickers a bit, ",
        "and also I smell gas in the kitchen right now. Flat 4"
    ));
    assert_eq!(t.intent, "emergency");
    assert_eq!(t.category.as_deref(), Some("gas"));
    let t = classify(concat!(
        "Can I book the laundry room on Saturday? ",
        "Also water is gushing from a burst pipe under my sink!"
    ));
    assert_eq!(t.intent, "emergency");
    assert_eq!(t.category.as_deref(), Some("plumbing"));
}

#[test]
fn language_with_and_without_diacritics() {
    let cases = [
        (
            "Vandhanen i køkkenet drypper hele tiden, kan I sende en VVS'er?",
            "da",
        ),
        (
            "Vandhanen i koekkenet drypper hele tiden, kan I sende en vvs mand?",
            "da",
        ),
        (
            "The kitchen tap keeps dripping, could you send a plumber?",
            "en",
        ),
        // Mixed: a Danish greeting and sign-off around an English body.
        (
            "Hej! The radiator in the bedroom stays cold all day and the valve is stuck. Tak",
            "en",
        ),
        (
            "Hi, radiatoren i soveværelset er kold hele dagen og ventilen sidder fast. Thanks",
            "da",
        ),
    ];
    for (text, language) in cases {
        assert_eq!(classify(text).language, language, "language of: {text}");
    }
}

#[test]
fn handover_rules_set_needs_human() {
    let cases = [
        "Jeg har kontaktet Huslejenævnet om varmeregnskabet",
        "My lawyer will contact you about the deposit",
        "The man in 4. tv keeps harassing my daughter on the stairs",
        "I lost my job and can't pay the rent this month",
        "Can Henrik please call me about the window?",
        "My father is 92, in a wheelchair, and the lift has been out for two days",
        "I feel I am being discriminated against by the caretaker",
    ];
    for text in cases {
        let t = classify(text);
        assert!(t.needs_human, "needs_human of: {text}");
        let reasons = &t.explanation["needs_human_because"];
        assert!(
            reasons.as_array().is_some_and(|r| !r.is_empty()),
            "no reason for: {text}"
        );
    }
}

#[test]
fn units_are_the_senders_own() {
    let cases: &[(&str, Option<&str>)] = &[
        ("Toilettet løber konstant. Mvh 2. tv", Some("2. tv")),
        (
            "Jeg bor i st. th og dørtelefonen virker ikke",
            Some("st. th"),
        ),
        ("Fugt på væggen i kælderlejligheden K.tv", Some("K.tv")),
        ("The oven door is broken, flat 14C", Some("flat 14C")),
        ("Naboen i 3. th spiller høj musik om natten", None),
        ("The stairwell light on 2. sal in opgang B is out", None),
        ("Any news on case 20931? Still no reply", None),
    ];
    for (text, unit) in cases {
        assert_eq!(classify(text).unit.as_deref(), *unit, "unit of: {text}");
    }
}

#[test]
fn personal_data_kinds() {
    let cases: &[(&str, &[&str])] = &[
        ("Ring til mig på +45 22 33 44 55", &["phone"]),
        ("Please reply to j.smith@example.com", &["email"]),
        ("Mit CPR-nummer er 120385-1234", &["cpr"]),
        ("Refund to IBAN DK50 0040 0440 1162 43 please", &["iban"]),
        (
            "Pengene kan sendes til reg.nr. 1234 kontonr. 0012345678",
            &["iban"],
        ),
        ("Hej, vasken er stoppet. Mvh Karen", &["name"]),
        ("CPR 320185-1234 er mit nummer", &[]),
    ];
    for (text, kinds) in cases {
        assert_eq!(classify(text).pii, *kinds, "pii of: {text}");
    }
}

#[test]
fn redact_removes_every_kind() {
    let text = "Hej, jeg er Mette (120385-1234), ring +45 22 33 44 55 eller mette@example.com";
    let redacted = redact(text);
    for secret in ["Mette", "120385-1234", "22 33 44 55", "mette@example.com"] {
        assert!(!redacted.contains(secret), "{secret} left in: {redacted}");
    }
    assert!(redacted.contains("[CPR]"), "{redacted}");
}

#[test]
fn output_obeys_label_constraints() {
    let texts = [
        "When is the bulky waste collected?",
        "Kan jeg booke fælleslokalet lørdag?",
        "I want to terminate my lease by 1 March",
        "The dishwasher leaks a little under the door",
        "Any news on my request about the dripping tap?",
    ];
    for text in texts {
        let t = classify(text);
        let no_work = [
            "rent_payment",
            "lease",
            "complaint",
            "booking",
            "general_question",
        ];
        if no_work.contains(&t.intent.as_str()) {
            assert_eq!(t.urgency, "none", "urgency of: {text}");
        }
        if !matches!(t.intent.as_str(), "maintenance_request" | "emergency") {
            assert_eq!(t.category, None, "category of: {text}");
        }
        assert_eq!(
            t.intent == "emergency",
            t.urgency == "emergency",
            "emergency of: {text}"
        );
        assert!((0.0..=1.0).contains(&t.confidence), "confidence of: {text}");
    }
}

#[test]
fn low_confidence_needs_human() {
    let t = classify("hmm");
    if t.confidence < caretaker::triage::LOW_CONFIDENCE {
        assert!(t.needs_human);
        assert!(
            t.explanation["low_confidence"].is_string(),
            "{}",
            t.explanation
        );
    }
    let t = classify("");
    assert!(t.needs_human, "an empty message has nothing to decide on");
}

#[test]
fn message_without_request_goes_to_human() {
    let cases = [
        "hello",
        "Hi",
        "thank you",
        "Thanks a lot!",
        "tak for hjælpen",
        "Tak for hjaelpen",
        "Mange tak 🙂",
        "ok",
        "Okay, noted",
        "Hej Mette, tusind tak. Mvh Jens",
    ];
    for text in cases {
        let t = classify(text);
        assert!(
            t.confidence < caretaker::triage::LOW_CONFIDENCE,
            "confidence {} of: {text}",
            t.confidence
        );
        assert!(t.needs_human, "needs_human of: {text}");
        assert_ne!(t.intent, "maintenance_request", "intent of: {text}");
        assert_ne!(t.intent, "emergency", "intent of: {text}");
        assert_eq!(t.category, None, "category of: {text}");
        assert_eq!(t.urgency, "none", "urgency of: {text}");
        let low = t.explanation["low_confidence"].as_str().unwrap_or_default();
        assert!(low.contains("no request"), "explanation of: {text}: {low}");
        let because = t.explanation["needs_human_because"].to_string();
        assert!(
            because.contains("no request"),
            "reasons of: {text}: {because}"
        );
    }
}

#[test]
fn courteous_repair_request_keeps_its_intent() {
    let cases = [
        (
            "Thank you! The kitchen tap is dripping again though",
            "plumbing",
        ),
        (
            "Tak for hjælpen. Nu virker opvaskemaskinen ikke",
            "appliance",
        ),
        ("ok, the radiator in the bedroom is cold", "heating"),
    ];
    for (text, category) in cases {
        let t = classify(text);
        assert_eq!(t.intent, "maintenance_request", "intent of: {text}");
        assert_eq!(t.category.as_deref(), Some(category), "category of: {text}");
        assert!(
            !t.explanation["rules"].to_string().contains("no request"),
            "no-request rule fired on: {text}"
        );
    }
}

#[test]
fn repair_confidence_counts_category_head() {
    let cases = [
        "The kitchen tap drips",
        "Radiatoren i stuen er kold",
        "hmm something",
        "can you fix it",
        "it is broken again",
    ];
    for text in cases {
        let t = classify(text);
        if t.intent != "maintenance_request" {
            continue;
        }
        // The confidence is the geometric mean of the intent's and the category's probability,
        // so it cannot exceed the square root of the category's.
        let p_category = t.explanation["model"]["category"]["probability"]
            .as_f64()
            .expect("a repair request reports its category probability")
            as f32;
        assert!(
            t.confidence <= p_category.sqrt() + 1e-4,
            "confidence {} with category probability {p_category} of: {text}",
            t.confidence
        );
    }
}

#[test]
fn emergencies_in_wordings_without_danger_nouns() {
    let cases = [
        (
            "Elevatoren står stille mellem to etager, og min søn er derinde",
            "elevator",
        ),
        (
            "Vi kan ikke lukke for vandet, det løber ud under vasken",
            "plumbing",
        ),
        (
            "Our front door has been forced. The TV and laptops were stolen.",
            "doors_locks",
        ),
        ("Kaelderen staar under vand efter et roersbrud", "plumbing"),
    ];
    for (text, category) in cases {
        let t = classify(text);
        assert_eq!(t.intent, "emergency", "intent of: {text}");
        assert_eq!(t.category.as_deref(), Some(category), "category of: {text}");
        assert!(t.needs_human, "needs_human of: {text}");
    }
}

#[test]
fn detector_request_has_message_fields() {
    use caretaker::detect::request::{
        Audience, MaintenanceRequest, RequestSource, RequestState, Severity, Urgency,
    };
    let request = MaintenanceRequest {
        request_id: "gw-ahu-1-1700000000000".into(),
        alarm_key: "ahu-1-drift".into(),
        source: RequestSource::Forecast,
        asset: "ahu-1".into(),
        sensors: vec!["ahu-1/filter_dp".into()],
        fault_kind: "forecast_high".into(),
        severity: Severity::Warning,
        category: "ventilation".into(),
        urgency: Urgency::Routine,
        audience: Audience::Operator,
        summary: "filter pressure drop rising".into(),
        forecast: None,
        explanation: serde_json::json!({"detector": "trend", "score": 0.7, "threshold": 0.5}),
        state: RequestState::Open,
        opened_ms: 1_700_000_000_000,
        closed_ms: None,
    };
    let t = caretaker::triage::triage_request(&request, "en");
    assert_eq!(t.language, "en");
    assert_eq!(t.intent, "maintenance_request");
    assert_eq!(t.category.as_deref(), Some("ventilation"));
    assert_eq!(t.urgency, "routine");
    assert!(t.needs_human, "operator requests go to a human");
    assert_eq!(t.unit, None);
    assert!(t.pii.is_empty());
    assert_eq!(t.explanation["detector"], "trend");
}

#[test]
fn heating_outage_urgent_unless_vulnerable() {
    let urgent = [
        "The heating has been off since this morning and it's minus 5 outside. Please come today.",
        "Ingen varme i lejligheden, og det fryser udenfor. Kan I komme i dag?",
    ];
    for text in urgent {
        let t = classify(text);
        assert_eq!(t.intent, "maintenance_request", "intent of: {text}");
        assert_eq!(t.urgency, "urgent", "urgency of: {text}");
    }
    let t = classify(
        "The heating has been off since this morning, it's minus 5 and my baby is 3 weeks old",
    );
    assert_eq!(t.intent, "emergency");
    assert_eq!(t.category.as_deref(), Some("heating"));
}
