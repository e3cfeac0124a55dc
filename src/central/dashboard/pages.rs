//! HTML of the dashboard's pages, rendered from view structs by pure functions. maud escapes
//! every interpolated value, so text from gateways, tenants and users is safe to show.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::central::store::{GatewayStatus, TicketRow};
use crate::protocol::{AuditEntry, Change, OfficeChange, TenantRecord, Transition};

use super::auth::SignedIn;
use super::plot::series_plot;
use super::vendor_link::{VendorAction, VendorLink};
use super::view::{
    countdown, format_input_time, format_time, in_escalation_queue, next_due, AnomalyView, STATES,
    URGENCIES,
};

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; }
header { background: #23395d; color: #fff; padding: .5rem 1rem; display: flex; gap: 1rem;
  align-items: center; }
header a { color: #fff; }
header form { margin-left: auto; }
main { padding: 1rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
.alert { background: #fde2e1; border: 1px solid #c0392b; padding: .5rem 1rem; margin: 0 0 1rem; }
.notice { background: #e3f4e1; border: 1px solid #2e7d32; padding: .5rem 1rem; margin: 0 0 1rem; }
.overdue { color: #b00020; font-weight: bold; }
.soon { color: #b35c00; }
.emergency { color: #b00020; font-weight: bold; }
.urgent { color: #b35c00; }
.queue { background: #fff6e5; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; }
.actions form { border: 1px solid #ccc; padding: .5rem; }
.actions label { display: block; margin: .2rem 0; }
pre { white-space: pre-wrap; margin: 0; }
svg.plot .frame { fill: #fafafa; stroke: #ccc; }
svg.plot .band { fill: #9ec5fe; opacity: .5; }
svg.plot .mean { stroke: #1f4e9e; stroke-width: 1.5; }
svg.plot .event { stroke: #b00020; stroke-dasharray: 4 3; }
svg.plot text { font-size: 11px; fill: #444; }
";

/// Encodes text as one URL path segment.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(crate) fn ticket_path(id: &str) -> String {
    format!("/tickets/{}", path_segment(id))
}

pub(crate) fn building_path(building: &str) -> String {
    format!("/buildings/{}", path_segment(building))
}

/// Wraps a page's content in the document, with the navigation for a signed-in user and a
/// reload every `refresh_secs` when given.
fn layout(
    title: &str,
    user: Option<&SignedIn>,
    refresh_secs: Option<u32>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh_secs {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · Caretaker office" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "Caretaker office" }
                    @if let Some(user) = user {
                        a href="/tickets" { "Tickets" }
                        span { "Signed in as " (user.user) " (" (user.role.as_str()) ")" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(user.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// Renders the sign-in page, with an error message after a failed attempt.
pub(crate) fn sign_in(error: Option<&str>, next: &str) -> Markup {
    let content = html! {
        h1 { "Sign in" }
        @if let Some(error) = error {
            p class="alert" role="alert" { (error) }
        }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label { "User name " input type="text" name="user" id="user" required
                autocomplete="username"; }
            br;
            label { "Password " input type="password" name="password" id="password" required
                autocomplete="current-password"; }
            br;
            button type="submit" id="sign-in" { "Sign in" }
        }
    };
    layout("Sign in", None, None, content)
}

/// Renders a page that explains why a request failed.
pub(crate) fn error_page(user: Option<&SignedIn>, title: &str, message: &str) -> Markup {
    let content = html! {
        h1 { (title) }
        p class="alert" role="alert" { (message) }
        @if user.is_some() {
            p { a href="/tickets" { "Back to the tickets" } }
        }
    };
    layout(title, user, None, content)
}

/// Filters of the ticket list, as the query string carries them; an empty value matches
/// everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct ListFilter {
    #[serde(default)]
    pub building: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub urgency: Option<String>,
    /// `on` to include resolved, closed and cancelled tickets.
    #[serde(default)]
    pub finished: Option<String>,
}

impl ListFilter {
    fn value(field: &Option<String>) -> Option<&str> {
        field.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn building(&self) -> Option<&str> {
        Self::value(&self.building)
    }

    pub fn state(&self) -> Option<&str> {
        Self::value(&self.state)
    }

    pub fn urgency(&self) -> Option<&str> {
        Self::value(&self.urgency)
    }

    pub fn include_finished(&self) -> bool {
        Self::value(&self.finished).is_some()
    }

    /// Returns the filter as a query string, for the CSV export link.
    pub fn query(&self) -> String {
        let mut pairs = Vec::new();
        for (name, value) in [
            ("building", self.building()),
            ("state", self.state()),
            ("urgency", self.urgency()),
        ] {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        }
        if self.include_finished() {
            pairs.push(("finished", "on"));
        }
        serde_urlencoded::to_string(pairs).expect("string pairs always encode")
    }
}

/// View data of the ticket list.
pub(crate) struct TicketList<'a> {
    pub user: &'a SignedIn,
    pub now_ms: i64,
    pub refresh_secs: u32,
    /// Sorted with the escalation queue first.
    pub tickets: &'a [TicketRow],
    pub filter: &'a ListFilter,
    pub buildings: &'a [String],
    /// Gateways whose heartbeat stopped.
    pub stale: &'a [GatewayStatus],
}

pub(crate) fn ticket_list(page: &TicketList<'_>) -> Markup {
    let (queue, rest): (Vec<&TicketRow>, Vec<&TicketRow>) =
        page.tickets.iter().partition(|t| in_escalation_queue(t));
    let personal = page.user.role.sees_personal_data();
    let content = html! {
        @for gateway in page.stale {
            p class="alert" role="alert" data-building=(gateway.building) {
                "No heartbeat from gateway " (gateway.gateway) " of building "
                a href=(building_path(&gateway.building)) { (gateway.building) }
                " since " (format_time(gateway.received_ms)) "."
            }
        }
        h1 { "Tickets" }
        (filter_form(page.filter, page.buildings))
        p {
            a href=(format!("/export/tickets.csv?{}", page.filter.query())) {
                "Export these tickets as CSV"
            }
        }
        h2 { "Escalation queue (" (queue.len()) ")" }
        @if queue.is_empty() {
            p { "No ticket waits for a human." }
        } @else {
            (ticket_table("escalation-queue", &queue, page.now_ms, personal))
        }
        h2 { "Other tickets (" (rest.len()) ")" }
        @if rest.is_empty() {
            p { "No tickets match the filters." }
        } @else {
            (ticket_table("tickets", &rest, page.now_ms, personal))
        }
        @if !page.buildings.is_empty() {
            h2 { "Buildings" }
            ul {
                @for building in page.buildings {
                    li { a href=(building_path(building)) { (building) } }
                }
            }
        }
    };
    layout("Tickets", Some(page.user), Some(page.refresh_secs), content)
}

fn filter_form(filter: &ListFilter, buildings: &[String]) -> Markup {
    let option = |value: &str, selected: Option<&str>| {
        html! {
            option value=(value) selected[selected == Some(value)] { (value) }
        }
    };
    html! {
        form method="get" action="/tickets" class="filters" {
            label { "Building "
                select name="building" {
                    option value="" { "all" }
                    @for building in buildings { (option(building, filter.building())) }
                }
            }
            " "
            label { "State "
                select name="state" {
                    option value="" { "all" }
                    @for state in STATES { (option(state, filter.state())) }
                }
            }
            " "
            label { "Urgency "
                select name="urgency" {
                    option value="" { "all" }
                    @for urgency in URGENCIES { (option(urgency, filter.urgency())) }
                }
            }
            " "
            label {
                input type="checkbox" name="finished" value="on"
                    checked[filter.include_finished()];
                " include finished"
            }
            " "
            button type="submit" { "Filter" }
        }
    }
}

fn ticket_table(id: &str, tickets: &[&TicketRow], now_ms: i64, personal: bool) -> Markup {
    html! {
        table id=(id) {
            thead {
                tr {
                    th { "Ticket" } th { "Building" } th { "State" } th { "Urgency" }
                    th { "Category" } th { "Unit" } th { "Summary" } th { "Vendor" }
                    th { "SLA" }
                }
            }
            tbody {
                @for ticket in tickets {
                    tr class="ticket" data-ticket=(ticket.id) {
                        td { a href=(ticket_path(&ticket.id)) { (ticket.id) } }
                        td { a href=(building_path(&ticket.building)) { (ticket.building) } }
                        td {
                            (ticket.state)
                            @if let Some(reason) = &ticket.escalation_reason {
                                br; small { (reason) }
                            }
                        }
                        td class=(ticket.urgency) { (ticket.urgency) }
                        td { (ticket.category) }
                        td { (unit_text(ticket.unit.as_deref(), personal)) }
                        td { (ticket.summary) }
                        td { (ticket.vendor.as_deref().unwrap_or("")) }
                        td { (sla_cell(ticket, now_ms)) }
                    }
                }
            }
        }
    }
}

fn unit_text(unit: Option<&str>, personal: bool) -> String {
    match (unit, personal) {
        (None, _) => String::new(),
        (Some(unit), true) => unit.to_string(),
        (Some(_), false) => "hidden".to_string(),
    }
}

fn sla_cell(ticket: &TicketRow, now_ms: i64) -> Markup {
    match next_due(ticket) {
        Some(due) => {
            let (text, pressure) = countdown(due, now_ms);
            html! {
                span class=(pressure.css_class()) title=(format_time(due.at_ms)) { (text) }
            }
        }
        None => html! {},
    }
}

/// View data of a ticket's page.
pub(crate) struct TicketPage<'a> {
    pub user: &'a SignedIn,
    pub now_ms: i64,
    pub ticket: &'a TicketRow,
    pub history: &'a [Transition],
    pub audit: &'a [AuditEntry],
    /// Office changes to this ticket, oldest first.
    pub changes: &'a [OfficeChange],
    /// The tenant directory entry of the ticket's unit; `None` when unknown or when the
    /// user's role does not allow personal data.
    pub tenant: Option<&'a TenantRecord>,
    /// The vendor of an office assignment that the gateway has not reported back yet.
    pub pending_vendor: Option<&'a str>,
    /// Signed status links for the assigned vendor, when the user may act.
    pub vendor_links: &'a [(VendorAction, String)],
    /// A confirmation of the action just taken.
    pub notice: Option<&'a str>,
}

pub(crate) fn ticket_page(page: &TicketPage<'_>) -> Markup {
    let ticket = page.ticket;
    let personal = page.user.role.sees_personal_data();
    let vendor = page.pending_vendor.or(ticket.vendor.as_deref());
    let content = html! {
        @if let Some(notice) = page.notice {
            p class="notice" role="status" id="notice" { (notice) }
        }
        h1 { "Ticket " (ticket.id) }
        table id="ticket-facts" {
            tr { th { "Building" } td { a href=(building_path(&ticket.building)) {
                (ticket.building) } } }
            tr { th { "Gateway" } td { (ticket.gateway) } }
            tr { th { "State" } td id="ticket-state" { (ticket.state) } }
            @if in_escalation_queue(ticket) {
                tr { th { "Escalated" } td class="overdue" {
                    (ticket.escalation_reason.as_deref().unwrap_or("waits for a human"))
                } }
            }
            tr { th { "Urgency" } td class=(ticket.urgency) { (ticket.urgency) } }
            tr { th { "Category" } td { (ticket.category) } }
            tr { th { "Unit" } td { (unit_text(ticket.unit.as_deref(), personal)) } }
            tr { th { "Asset" } td { (ticket.asset.as_deref().unwrap_or("")) } }
            tr { th { "Summary" } td { (ticket.summary) } }
            tr { th { "Vendor" } td id="ticket-vendor" {
                @if let Some(pending) = page.pending_vendor {
                    (pending) " (assigned by the office; the gateway has not confirmed it yet)"
                } @else {
                    (ticket.vendor.as_deref().unwrap_or("none"))
                }
            } }
            tr { th { "Slot" } td { (slot_text(ticket.slot_start_ms, ticket.slot_end_ms)) } }
            tr { th { "SLA" } td { (sla_cell(ticket, page.now_ms)) } }
            tr { th { "Opened" } td { (format_time(ticket.opened_ms)) } }
            tr { th { "Updated" } td { (format_time(ticket.updated_ms)) } }
        }
        (tenant_section(page.tenant, ticket.unit.is_some(), personal))
        @if page.user.role.may_act() {
            (action_forms(page.user, ticket, vendor, page.now_ms))
            @if !page.vendor_links.is_empty() {
                h2 { "Status links for " (vendor.unwrap_or("")) }
                p { "Send these to the vendor; they work without an account until they expire." }
                ul id="vendor-links" {
                    @for (action, url) in page.vendor_links {
                        li { (action.label()) ": " a href=(url) { (url) } }
                    }
                }
            }
        }
        h2 { "Office changes" }
        @if page.changes.is_empty() {
            p { "The office has not changed this ticket." }
        } @else {
            table id="office-changes" {
                thead { tr { th { "#" } th { "Time" } th { "By" } th { "Change" } } }
                tbody {
                    @for change in page.changes {
                        tr {
                            td { (change.id) }
                            td { (format_time(change.ts_ms)) }
                            td { (change.actor) }
                            td { (describe_change(&change.change)) }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        table id="history" {
            thead { tr { th { "#" } th { "Time" } th { "From" } th { "To" } th { "By" }
                th { "Why" } } }
            tbody {
                @for step in page.history {
                    tr {
                        td { (step.seq) }
                        td { (format_time(step.ts_ms)) }
                        td { (step.from.as_deref().unwrap_or("")) }
                        td { (step.to) }
                        td { (step.actor) }
                        td { (step.reason) }
                    }
                }
            }
        }
        h2 { "Audit story" }
        @if page.audit.is_empty() {
            p { "No audit entries arrived for this ticket yet." }
        } @else {
            table id="audit" {
                thead { tr { th { "Time" } th { "By" } th { "Decision" } th { "Detail" }
                    th { "Hash" } } }
                tbody {
                    @for entry in page.audit {
                        tr {
                            td { (format_time(entry.ts_ms)) }
                            td { (entry.actor) }
                            td { (entry.action) }
                            td { pre { (pretty_json(&entry.detail)) } }
                            td { code title=(entry.hash) {
                                (entry.hash.get(..12).unwrap_or(&entry.hash)) } }
                        }
                    }
                }
            }
        }
    };
    layout(
        &format!("Ticket {}", ticket.id),
        Some(page.user),
        None,
        content,
    )
}

fn tenant_section(tenant: Option<&TenantRecord>, has_unit: bool, personal: bool) -> Markup {
    html! {
        h2 { "Tenant" }
        @if !personal {
            p { "Tenants' personal data is hidden for your role." }
        } @else if let Some(tenant) = tenant {
            table id="tenant" {
                tr { th { "Language" } td { (tenant.language) } }
                tr { th { "Updates" } td {
                    @if tenant.consent { "agreed" } @else { "no consent" }
                    @if !tenant.opt_outs.is_empty() {
                        " (opted out of " (tenant.opt_outs.join(", ")) ")"
                    }
                } }
                tr { th { "Contacts" } td {
                    @for contact in &tenant.contacts {
                        (contact.channel) ": " (contact.address) br;
                    }
                } }
                tr { th { "Entry without tenant" } td {
                    @if tenant.permission_to_enter { "allowed" } @else { "not allowed" }
                } }
                @if !tenant.availability.is_empty() {
                    tr { th { "At home" } td { (tenant.availability.join("; ")) } }
                }
            }
        } @else if has_unit {
            p { "The office's tenant directory has no entry for this unit." }
        } @else {
            p { "The ticket names no unit." }
        }
    }
}

fn action_forms(user: &SignedIn, ticket: &TicketRow, vendor: Option<&str>, now_ms: i64) -> Markup {
    let path = ticket_path(&ticket.id);
    let slot_start = ticket
        .slot_start_ms
        .map(format_input_time)
        .unwrap_or_else(|| format_input_time(now_ms + 3_600_000));
    let slot_end = ticket
        .slot_end_ms
        .map(format_input_time)
        .unwrap_or_else(|| format_input_time(now_ms + 3 * 3_600_000));
    html! {
        h2 { "Actions" }
        p { "Each action is sent to the building's gateway at its next sync. Times are UTC." }
        div class="actions" {
            form method="post" action=(format!("{path}/acknowledge")) id="acknowledge" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Note " input type="text" name="note"; }
                button type="submit" { "Acknowledge" }
            }
            form method="post" action=(format!("{path}/assign")) id="assign" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Vendor " input type="text" name="vendor" id="assign-vendor" required
                    value=(vendor.unwrap_or("")); }
                label { "Slot from " input type="datetime-local" name="slot_start"
                    value=(slot_start); }
                label { "until " input type="datetime-local" name="slot_end" value=(slot_end); }
                label { "Note " input type="text" name="note"; }
                button type="submit" id="assign-submit" { "Assign vendor" }
            }
            form method="post" action=(format!("{path}/reschedule")) id="reschedule" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Slot from " input type="datetime-local" name="slot_start" required
                    value=(slot_start); }
                label { "until " input type="datetime-local" name="slot_end" required
                    value=(slot_end); }
                label { "Note " input type="text" name="note"; }
                button type="submit" { "Reschedule" }
            }
            form method="post" action=(format!("{path}/close")) id="close" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Note " input type="text" name="note"; }
                button type="submit" { "Close ticket" }
            }
            form method="post" action=(format!("{path}/cancel")) id="cancel" {
                input type="hidden" name="csrf" value=(user.csrf);
                label { "Note " input type="text" name="note"; }
                button type="submit" { "Cancel job" }
            }
        }
    }
}

fn slot_text(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(start), Some(end)) => format!("{} to {}", format_time(start), format_time(end)),
        (Some(start), None) => format!("from {}", format_time(start)),
        _ => "none".to_string(),
    }
}

/// Describes an office change in a line.
pub(crate) fn describe_change(change: &Change) -> String {
    match change {
        Change::Ticket {
            action,
            vendor,
            slot_start_ms,
            slot_end_ms,
            note,
            ..
        } => {
            let action = serde_json::to_value(action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut text = action.replace('_', " ");
            if let Some(vendor) = vendor {
                text.push_str(&format!(", vendor {vendor}"));
            }
            if slot_start_ms.is_some() {
                text.push_str(&format!(
                    ", slot {}",
                    slot_text(*slot_start_ms, *slot_end_ms)
                ));
            }
            if let Some(note) = note.as_deref().filter(|n| !n.is_empty()) {
                text.push_str(&format!(", note: {note}"));
            }
            text
        }
        Change::TenantUpsert(record) => format!("tenant directory entry of unit {}", record.unit),
        Change::TenantRemove { unit } => format!("tenant directory entry of unit {unit} removed"),
    }
}

fn pretty_json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// View data of a building's page.
pub(crate) struct BuildingPage<'a> {
    pub user: &'a SignedIn,
    pub refresh_secs: u32,
    pub building: &'a str,
    pub gateways: &'a [GatewayStatus],
    /// Newest first.
    pub anomalies: &'a [AnomalyView],
    /// How far back the anomalies reach, in days.
    pub days: i64,
}

pub(crate) fn building_page(page: &BuildingPage<'_>) -> Markup {
    let building = page.building;
    let content = html! {
        h1 { "Building " (building) }
        h2 { "Gateways" }
        @if page.gateways.is_empty() {
            p { "No gateway of this building has sent a heartbeat." }
        } @else {
            table id="gateways" {
                thead { tr { th { "Gateway" } th { "Last heartbeat" } th { "Health" }
                    th { "Version" } th { "Outbox" } } }
                tbody {
                    @for gateway in page.gateways {
                        tr class=[gateway.stale.then_some("overdue")] {
                            td { (gateway.gateway) }
                            td {
                                (format_time(gateway.received_ms))
                                @if gateway.stale { " (stopped)" }
                            }
                            td {
                                (gateway.heartbeat.health)
                                @for problem in &gateway.heartbeat.problems {
                                    br; small { (problem) }
                                }
                            }
                            td { (gateway.heartbeat.version) }
                            td { (gateway.heartbeat.outbox_events) }
                        }
                    }
                }
            }
        }
        p {
            a href=(format!("/tickets?building={}", path_segment(building))) {
                "Tickets of this building" }
            " · "
            a href=(format!("/export/readings.csv?building={}&days={}",
                path_segment(building), page.days)) {
                "Export readings summaries as CSV" }
        }
        h2 { "Anomalies of the last " (page.days) " days" }
        @if page.anomalies.is_empty() {
            p { "No anomalies." }
        }
        @for anomaly in page.anomalies {
            section class="anomaly" {
                h3 { (anomaly.asset) ": " (anomaly.fault) " at " (format_time(anomaly.at_ms)) }
                p {
                    @if let Some(detector) = &anomaly.detector { "Detector " (detector) ". " }
                    @if let Some(score) = anomaly.score {
                        "Score " (format!("{score:.3}"))
                        @if let Some(threshold) = anomaly.threshold {
                            " (threshold " (format!("{threshold:.3}")) ")"
                        }
                        ". "
                    }
                    @if let Some(ticket) = &anomaly.ticket {
                        "Ticket " a href=(ticket_path(ticket)) { (ticket) } "."
                    }
                }
                @if anomaly.series.is_empty() {
                    p { "The gateway sent no sensor readings with this anomaly." }
                }
                @for series in &anomaly.series {
                    figure {
                        (series_plot(series, anomaly.at_ms))
                        figcaption { (series.sensor) }
                    }
                }
            }
        }
    };
    layout(
        &format!("Building {building}"),
        Some(page.user),
        Some(page.refresh_secs),
        content,
    )
}

/// View data of the page behind a vendor status link.
pub(crate) struct VendorPage<'a> {
    pub link: &'a VendorLink,
    /// The link's query string, posted back by the confirmation form.
    pub query: &'a str,
    pub ticket: &'a TicketRow,
    /// Set once the report was recorded.
    pub recorded: bool,
}

pub(crate) fn vendor_page(page: &VendorPage<'_>) -> Markup {
    let ticket = page.ticket;
    let content = html! {
        h1 { "Ticket " (ticket.id) " for " (page.link.vendor) }
        p { (ticket.category) ", " (ticket.urgency) ": " (ticket.summary) }
        p { "Building " (ticket.building)
            @if let Some(asset) = &ticket.asset { ", asset " (asset) } "." }
        p { "Slot: " (slot_text(ticket.slot_start_ms, ticket.slot_end_ms)) }
        @if page.recorded {
            p class="notice" role="status" id="notice" {
                "Thank you. The office recorded: " (page.link.action.label()) "."
            }
        } @else {
            form method="post" action=(format!("/vendor/status?{}", page.query)) {
                button type="submit" id="vendor-report" { (page.link.action.label()) }
            }
            p { "This link works until " (format_time(page.link.expires_ms)) "." }
        }
    };
    layout(&format!("Ticket {}", ticket.id), None, None, content)
}

#[cfg(test)]
mod tests {
    use super::super::auth::Role;
    use super::super::view::tests::ticket;
    use super::*;

    fn user(role: Role) -> SignedIn {
        SignedIn {
            user: "ida".into(),
            role,
            csrf: "token123".into(),
        }
    }

    #[test]
    fn path_segment_escapes() {
        assert_eq!(path_segment("B1-000001"), "B1-000001");
        assert_eq!(path_segment("a b/c?"), "a%20b%2Fc%3F");
    }

    #[test]
    fn list_shows_queue_first_and_escapes() {
        let mut escalated = ticket("B1-000002", "escalated", "normal");
        escalated.summary = "<b>flood</b>".into();
        let tickets = vec![escalated, ticket("B1-000001", "new", "emergency")];
        let viewer = user(Role::Office);
        let filter = ListFilter::default();
        let html = ticket_list(&TicketList {
            user: &viewer,
            now_ms: 0,
            refresh_secs: 30,
            tickets: &tickets,
            filter: &filter,
            buildings: &["north".to_string()],
            stale: &[],
        })
        .into_string();
        let queue = html.find("id=\"escalation-queue\"").unwrap();
        let rest = html.find("id=\"tickets\"").unwrap();
        assert!(queue < rest);
        assert!(html.find("B1-000002").unwrap() < html.find("B1-000001").unwrap());
        assert!(html.contains("&lt;b&gt;flood&lt;/b&gt;"));
        assert!(!html.contains("<b>flood"));
        assert!(html.contains("http-equiv=\"refresh\" content=\"30\""));
        assert!(html.contains("value=\"token123\""));
    }

    #[test]
    fn viewer_sees_no_unit_and_no_forms() {
        let tickets = [ticket("B1-000001", "new", "urgent")];
        let viewer = user(Role::Viewer);
        let history: Vec<Transition> = Vec::new();
        let html = ticket_page(&TicketPage {
            user: &viewer,
            now_ms: 0,
            ticket: &tickets[0],
            history: &history,
            audit: &[],
            changes: &[],
            tenant: None,
            pending_vendor: None,
            vendor_links: &[],
            notice: None,
        })
        .into_string();
        assert!(!html.contains("3B"), "{html}");
        assert!(html.contains("hidden for your role"));
        assert!(!html.contains("id=\"assign\""));
    }

    #[test]
    fn office_user_sees_unit_tenant_and_forms() {
        let tickets = [ticket("B1-000001", "new", "urgent")];
        let office = user(Role::Office);
        let tenant = TenantRecord {
            unit: "3B".into(),
            language: "da".into(),
            contacts: vec![crate::protocol::Contact {
                channel: "sms".into(),
                address: "+4512345678".into(),
            }],
            quiet_from: None,
            quiet_until: None,
            consent: true,
            opt_outs: vec![],
            permission_to_enter: false,
            availability: vec![],
        };
        let html = ticket_page(&TicketPage {
            user: &office,
            now_ms: 0,
            ticket: &tickets[0],
            history: &[],
            audit: &[],
            changes: &[],
            tenant: Some(&tenant),
            pending_vendor: Some("Aqua"),
            vendor_links: &[],
            notice: Some("Recorded"),
        })
        .into_string();
        assert!(html.contains("3B"));
        assert!(html.contains("+4512345678"));
        assert!(html.contains("id=\"assign\""));
        assert!(html.contains("action=\"/tickets/B1-000001/assign\""));
        assert!(html.contains("name=\"csrf\" value=\"token123\""));
        assert!(html.contains("Aqua (assigned by the office"));
    }

    #[test]
    fn change_descriptions() {
        let change = Change::Ticket {
            ticket: "B1-000001".into(),
            action: crate::protocol::TicketAction::OnTheWay,
            vendor: Some("Aqua".into()),
            slot_start_ms: None,
            slot_end_ms: None,
            note: Some(String::new()),
        };
        assert_eq!(describe_change(&change), "on the way, vendor Aqua");
    }

    #[test]
    fn filter_query_keeps_values() {
        let filter = ListFilter {
            building: Some("north wing".into()),
            state: Some(String::new()),
            urgency: Some("urgent".into()),
            finished: None,
        };
        assert_eq!(filter.query(), "building=north+wing&urgency=urgent");
        assert_eq!(filter.state(), None);
    }
}
