//! The demo's summary: what each stage of the pipeline produced.

use serde::Serialize;

use super::timeline::Counts;

/// Whether a stage produced anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Ok,
    Empty,
    /// The gateway runs without the component (its store has no dispatch tables), so the
    /// stage is not checked.
    NotBuilt,
}

/// One stage of the pipeline in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub name: &'static str,
    pub count: u64,
    pub status: StageStatus,
}

/// The demo's summary, printed at the end (as JSON with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub speed: f64,
    pub step_secs: f64,
    pub real_secs: f64,
    pub simulated_start: String,
    pub simulated_end: String,
    /// `simulation`, or the folder of the recorded series.
    pub data: String,
    /// `embedded`, or the broker's HOST:PORT.
    pub broker: String,
    pub dashboard_url: Option<String>,
    /// User name and password of the dashboard's office user, random per run.
    pub dashboard_login: Option<String>,
    pub metrics_url: String,
    pub stages: Vec<Stage>,
    pub counts: Counts,
    /// Problems the demo met on the way, such as a message the gateway did not accept.
    pub problems: Vec<String>,
}

impl Summary {
    /// Returns the names of the stages that produced nothing.
    pub fn empty_stages(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .filter(|stage| stage.status == StageStatus::Empty)
            .map(|stage| stage.name)
            .collect()
    }

    /// Formats the summary for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "\nSummary: {} to {} simulated ({} x real time, {:.0} s), data: {}, broker: {}\n",
            self.simulated_start,
            self.simulated_end,
            self.speed,
            self.real_secs,
            self.data,
            self.broker
        ));
        for stage in &self.stages {
            let status = match stage.status {
                StageStatus::Ok => "ok",
                StageStatus::Empty => "NOTHING",
                StageStatus::NotBuilt => "not in this build",
            };
            out.push_str(&format!(
                "  {:<26} {:>8}  {status}\n",
                stage.name, stage.count
            ));
        }
        match &self.dashboard_url {
            Some(url) => out.push_str(&format!(
                "Dashboard: {url} (sign in as {})\n",
                self.dashboard_login.as_deref().unwrap_or("-")
            )),
            None => out.push_str("Dashboard: none (this build has no central office)\n"),
        }
        out.push_str(&format!("Gateway metrics: {}\n", self.metrics_url));
        for problem in &self.problems {
            out.push_str(&format!("Problem: {problem}\n"));
        }
        out
    }
}

/// Builds the summary's stages. Dispatch's stages count only when the gateway's store has
/// dispatch's tables.
pub fn stages(counts: &Counts, dispatch: bool) -> Vec<Stage> {
    let stage = |name, count, built: bool| Stage {
        name,
        count,
        status: match (built, count) {
            (false, _) => StageStatus::NotBuilt,
            (true, 0) => StageStatus::Empty,
            (true, _) => StageStatus::Ok,
        },
    };
    vec![
        stage("readings_modbus", counts.readings_modbus, true),
        stage("readings_mqtt", counts.readings_mqtt, true),
        stage("anomalies", counts.anomalies, true),
        stage("maintenance_requests", counts.maintenance_requests, true),
        stage(
            "tenant_messages_triaged",
            counts.tenant_messages_triaged,
            true,
        ),
        stage("tickets", counts.tickets, dispatch),
        stage("merged_incidents", counts.merged_incidents, dispatch),
        stage("vendor_bookings", counts.vendor_bookings, dispatch),
        stage("tenant_updates", counts.tenant_updates, dispatch),
        stage("escalations", counts.escalations, dispatch),
        stage("events_synced", counts.events_synced, true),
    ]
}
