//! Tenant message triage: language, intent, category, urgency, human handover, unit and
//! personal data, from a small local model and rules.
//!
//! [`classify`] uses the model built into the binary; [`Classifier`] contains another one loaded
//! with `--model`. `caretaker triage` runs it over JSON lines and `caretaker train-triage`
//! rebuilds the model from the labelled corpus under `corpus/triage/`. [`triage_request`] gives
//! a detector's maintenance request the same fields as a tenant's message.

mod classify;
mod cli;
pub mod model;
mod names;
pub mod pii;
mod request;
pub mod rules;
pub mod score;
pub mod text;
pub mod train;
pub mod unit;

use std::path::Path;
use std::sync::LazyLock;

use serde::Serialize;

pub use classify::{LOW_CONFIDENCE, MAX_TEXT_BYTES};
pub use cli::{main, train_main, TrainTriageArgs, TriageArgs};
pub use model::{Model, ModelError};
pub use request::{triage_request, CATEGORIES};

/// The model built into the binary, trained by `caretaker train-triage`: `models/triage.json`,
/// compressed with DEFLATE by the build script.
const BUILTIN_MODEL_DEFLATE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/triage.json.deflate"));

/// Size of the built-in model inside the binary, compressed, in bytes.
pub const BUILTIN_MODEL_COMPRESSED_BYTES: usize = BUILTIN_MODEL_DEFLATE.len();

/// Largest model JSON that loading the built-in model inflates. Models stay under 10 MB, so
/// only a damaged binary reaches this limit.
const MAX_MODEL_JSON_BYTES: usize = 64 * 1024 * 1024;

/// Returns the JSON of the model built into the binary.
pub fn builtin_model_json() -> Result<String, ModelError> {
    let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(
        BUILTIN_MODEL_DEFLATE,
        MAX_MODEL_JSON_BYTES,
    )
    .map_err(|e| ModelError::Builtin(format!("failed to inflate it: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ModelError::Builtin(format!("it is invalid UTF-8: {e}")))
}

/// The decision for one message: the label schema's fields, a confidence and an explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Triage {
    /// `da` or `en`.
    pub language: String,
    pub intent: String,
    /// The trade a repair needs; only for `maintenance_request` and `emergency`.
    pub category: Option<String>,
    /// `emergency`, `urgent`, `routine` or `none`.
    pub urgency: String,
    pub needs_human: bool,
    /// The sender's flat as written in the message.
    pub unit: Option<String>,
    /// Kinds of personal data present: `phone`, `email`, `cpr`, `iban`, `name`.
    pub pii: Vec<String>,
    /// Confidence of the decision, from 0 to 1.
    pub confidence: f32,
    /// The rules that fired, the model's strongest features and why a human takes over.
    pub explanation: serde_json::Value,
}

/// A loaded triage model with the rules around it.
#[derive(Debug, Clone)]
pub struct Classifier {
    model: Model,
}

impl Classifier {
    /// Loads the model built into the binary.
    pub fn builtin() -> Result<Classifier, ModelError> {
        Ok(Classifier {
            model: Model::from_json(&builtin_model_json()?)?,
        })
    }

    /// Loads a model file written by `caretaker train-triage`.
    pub fn from_path(path: &Path) -> anyhow::Result<Classifier> {
        use anyhow::Context as _;
        let json = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read triage model {}", path.display()))?;
        let model = Model::from_json(&json)
            .with_context(|| format!("triage model {} is not usable", path.display()))?;
        Ok(Classifier { model })
    }

    /// Wraps a model that is already in memory, such as one just trained.
    pub fn from_model(model: Model) -> Classifier {
        Classifier { model }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Classifies one message. Any text, including empty or binary-looking text, gets a
    /// valid result.
    pub fn classify(&self, text: &str) -> Triage {
        classify::classify(&self.model, text)
    }
}

static BUILTIN: LazyLock<Result<Classifier, String>> =
    LazyLock::new(|| Classifier::builtin().map_err(|e| e.to_string()));

/// Classifies one message with the built-in model.
///
/// # Panics
///
/// Panics when the built-in model does not load, which a unit test rules out for every build.
pub fn classify(text: &str) -> Triage {
    match &*BUILTIN {
        Ok(classifier) => classifier.classify(text),
        Err(e) => panic!("built-in triage model is invalid: {e}"),
    }
}

/// Replaces the personal data in `text` (phone numbers, e-mail addresses, CPR numbers, bank
/// accounts, names) with its kind in brackets, for logs and sync.
pub fn redact(text: &str) -> String {
    pii::redact(text)
}
