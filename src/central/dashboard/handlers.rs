//! Request handlers of the dashboard.

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use serde::Deserialize;

use crate::central::store::{StoreError, TicketFilter, TicketRow};
use crate::dispatch::state::{self, TicketState};
use crate::protocol::{AuditEntry, Change, OfficeChange, TicketAction};

use super::auth::{self, Role, SignedIn};
use super::export;
use super::pages::{self, ListFilter};
use super::vendor_link::{LinkError, LinkParams, VendorAction, VendorLink};
use super::view;
use super::DashboardState;

/// Maximum number of tickets that one list page or export shows.
const MAX_TICKETS: i64 = 2_000;
/// Maximum number of a building's office changes that a ticket page reads to find the
/// ticket's own.
const MAX_CHANGES_SCANNED: i64 = 10_000;
const MAX_NOTE_CHARS: usize = 1_000;
const MAX_VENDOR_CHARS: usize = 200;
const DAY_MS: i64 = 86_400_000;

pub(super) fn routes() -> Router<DashboardState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/tickets") }))
        .route("/login", get(sign_in_form).post(sign_in))
        .route("/logout", post(sign_out))
        .route("/tickets", get(ticket_list))
        .route("/tickets/{id}", get(ticket_page))
        .route("/tickets/{id}/{action}", post(ticket_action))
        .route("/buildings/{building}", get(building_page))
        .route("/export/tickets.csv", get(export_tickets))
        .route("/export/readings.csv", get(export_readings))
        .route("/vendor/status", get(vendor_page).post(vendor_report))
}

/// Request failure, sent to the browser as a page that explains it.
#[derive(Debug)]
enum PageError {
    /// The request needs a session; the user is sent to sign in and then back to `next`.
    SignIn {
        next: String,
    },
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    Store(StoreError),
    Internal(String),
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        PageError::Store(error)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            PageError::SignIn { next } => {
                let query = serde_urlencoded::to_string([("next", next.as_str())])
                    .expect("string pairs always encode");
                return Redirect::to(&format!("/login?{query}")).into_response();
            }
            PageError::BadRequest(message) => (StatusCode::BAD_REQUEST, "Invalid request", message),
            PageError::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", message),
            PageError::NotFound(message) => (StatusCode::NOT_FOUND, "Not found", message),
            PageError::Conflict(message) => (StatusCode::CONFLICT, "Not possible", message),
            PageError::Store(error) => {
                tracing::error!(%error, "dashboard store query failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "The office database failed to answer; try again, and tell the operator if \
                     it keeps failing."
                        .to_string(),
                )
            }
            PageError::Internal(message) => {
                tracing::error!(%message, "dashboard request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "The request failed on the server; tell the operator.".to_string(),
                )
            }
        };
        html_response(status, pages::error_page(None, title, &message))
    }
}

/// Builds a page response with the headers every dashboard page carries: no caching (pages may
/// show personal data), no referrer to other sites (vendor links carry their signature in the
/// query), and a content security policy that allows no scripts. The referrer policy is
/// `same-origin`, not `no-referrer`, because with `no-referrer` browsers send `Origin: null`
/// on form posts, which the origin check rejects.
fn html_response(status: StatusCode, page: Markup) -> Response {
    let mut response = (status, Html(page.into_string())).into_response();
    let headers = response.headers_mut();
    let fixed = [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn csv_response(filename: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// Returns the signed-in user of a request and the session id, or sends the user to sign in.
async fn require_session(
    state: &DashboardState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(SignedIn, String), PageError> {
    let next = uri
        .path_and_query()
        .map_or("/tickets".to_string(), |p| p.as_str().to_string());
    let Some(session_id) = auth::session_cookie(headers) else {
        return Err(PageError::SignIn { next });
    };
    let now_ms = state.clock.wall_ms();
    let Some(session) = state
        .store
        .find_session(&auth::session_hash(&session_id), now_ms)
        .await?
    else {
        return Err(PageError::SignIn { next });
    };
    let role = Role::parse(&session.role).unwrap_or_else(|| {
        tracing::warn!(
            user = %session.user,
            role = %session.role,
            "unknown role of an office user; the dashboard treats it as viewer"
        );
        Role::Viewer
    });
    let csrf = auth::csrf_token(state.config.secret.expose().as_bytes(), &session_id);
    let user = SignedIn {
        user: session.user,
        role,
        csrf,
    };
    Ok((user, session_id))
}

/// Checks what every state-changing request of a signed-in user needs: the same origin and
/// the session's CSRF token.
fn check_form(
    state: &DashboardState,
    headers: &HeaderMap,
    user: &SignedIn,
    submitted: &str,
) -> Result<(), PageError> {
    if !auth::same_origin(headers, state.config.public_url.as_deref()) {
        return Err(PageError::Forbidden(
            "The form was sent from another site.".to_string(),
        ));
    }
    if !auth::csrf_matches(&user.csrf, submitted) {
        return Err(PageError::Forbidden(
            "The form's security token is missing or belongs to another session; reload the \
             page and send the form again."
                .to_string(),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn sign_in_form(Query(query): Query<NextQuery>) -> Response {
    let next = auth::local_redirect(query.next.as_deref());
    html_response(StatusCode::OK, pages::sign_in(None, &next))
}

#[derive(Deserialize)]
struct SignInForm {
    user: String,
    password: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    if !auth::same_origin(&headers, state.config.public_url.as_deref()) {
        return Err(PageError::Forbidden(
            "The sign-in form was sent from another site.".to_string(),
        ));
    }
    let next = auth::local_redirect(form.next.as_deref());
    let name = form.user.trim().to_string();
    let user = state.store.find_user(&name).await?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || {
        auth::verify_password(&password, stored_hash.as_deref())
    })
    .await
    .map_err(|error| PageError::Internal(format!("password check task failed: {error}")))?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            tracing::info!(user = %name, "dashboard sign-in rejected: invalid user name or password");
            let page = pages::sign_in(Some("Invalid user name or password."), &next);
            return Ok(html_response(StatusCode::UNAUTHORIZED, page));
        }
    };

    let session_id = auth::new_session_id()
        .map_err(|error| PageError::Internal(format!("no random session id: {error}")))?;
    let now_ms = state.clock.wall_ms();
    let expires_ms = now_ms + state.config.session_ms;
    state
        .store
        .create_session(
            &auth::session_hash(&session_id),
            &user.name,
            now_ms,
            expires_ms,
        )
        .await?;
    tracing::info!(user = %user.name, role = %user.role, "dashboard user signed in");
    let cookie = auth::session_set_cookie(
        &session_id,
        state.config.session_ms / 1000,
        state.config.secure_cookie,
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let (user, session_id) = require_session(&state, &headers, &uri).await?;
    check_form(&state, &headers, &user, &form.csrf)?;
    state
        .store
        .delete_session(&auth::session_hash(&session_id))
        .await?;
    tracing::info!(user = %user.user, "dashboard user signed out");
    let cookie = auth::session_clear_cookie(state.config.secure_cookie);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

fn store_filter(filter: &ListFilter) -> TicketFilter {
    TicketFilter {
        building: filter.building().map(str::to_string),
        state: filter.state().map(str::to_string),
        urgency: filter.urgency().map(str::to_string),
        open_only: !filter.include_finished() && filter.state().is_none(),
        limit: Some(MAX_TICKETS),
    }
}

async fn ticket_list(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Query(filter): Query<ListFilter>,
) -> Result<Response, PageError> {
    let (user, _) = require_session(&state, &headers, &uri).await?;
    let now_ms = state.clock.wall_ms();
    let mut tickets = state.store.list_tickets(&store_filter(&filter)).await?;
    view::sort_tickets(&mut tickets);
    let buildings = state.store.buildings().await?;
    let stale: Vec<_> = state
        .store
        .gateway_statuses(now_ms, state.config.heartbeat_stale_ms)
        .await?
        .into_iter()
        .filter(|gateway| gateway.stale)
        .collect();
    let page = pages::ticket_list(&pages::TicketList {
        user: &user,
        now_ms,
        refresh_secs: state.config.refresh_secs,
        tickets: &tickets,
        filter: &filter,
        buildings: &buildings,
        stale: &stale,
    });
    Ok(html_response(StatusCode::OK, page))
}

async fn find_ticket(state: &DashboardState, id: &str) -> Result<TicketRow, PageError> {
    state
        .store
        .ticket(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("No ticket has the id {id:?}.")))
}

/// Returns the office changes of one ticket, oldest first.
async fn ticket_changes(
    state: &DashboardState,
    ticket: &TicketRow,
) -> Result<Vec<OfficeChange>, PageError> {
    // NOTE: the store has no query by ticket, so this reads the building's feed, up to
    // MAX_CHANGES_SCANNED changes; changes beyond that are not shown.
    let changes = state
        .store
        .changes_after(&ticket.building, 0, MAX_CHANGES_SCANNED)
        .await?;
    Ok(changes
        .into_iter()
        .filter(|change| matches!(&change.change, Change::Ticket { ticket: id, .. } if *id == ticket.id))
        .collect())
}

/// Returns the ids of the office changes that the gateway rejected, from a ticket's audit
/// trail.
fn rejected_changes(audit: &[AuditEntry]) -> Vec<i64> {
    audit
        .iter()
        .filter(|entry| entry.action == "office_change.rejected")
        .filter_map(|entry| entry.detail["change"].as_i64())
        .collect()
}

/// Returns the vendor a ticket is assigned to: the vendor of the office's latest assignment
/// when the gateway has neither reported the ticket since nor rejected it, else the ticket's
/// own vendor.
fn current_vendor(
    ticket: &TicketRow,
    changes: &[OfficeChange],
    audit: &[AuditEntry],
) -> Option<String> {
    let rejected = rejected_changes(audit);
    let assigned = changes
        .iter()
        .rev()
        .filter(|change| !rejected.contains(&change.id))
        .find_map(|change| match &change.change {
            Change::Ticket {
                action: TicketAction::Assign,
                vendor: Some(vendor),
                ..
            } if change.ts_ms > ticket.updated_ms => Some(vendor.clone()),
            _ => None,
        });
    assigned.or_else(|| ticket.vendor.clone())
}

/// Returns the address the dashboard is reached at, without a trailing slash.
fn base_url(state: &DashboardState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if state.config.secure_cookie {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    done: Option<String>,
    change: Option<i64>,
}

fn notice_text(query: &NoticeQuery) -> Option<String> {
    let what = match query.done.as_deref()? {
        "acknowledge" => "Acknowledgement",
        "assign" => "Vendor assignment",
        "reschedule" => "New slot",
        "close" => "Closing",
        "cancel" => "Cancellation",
        _ => return None,
    };
    let change = query
        .change
        .map(|id| format!(" as office change #{id}"))
        .unwrap_or_default();
    Some(format!(
        "{what} recorded{change}. The building's gateway applies it at its next sync."
    ))
}

async fn ticket_page(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Query(notice): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let (user, _) = require_session(&state, &headers, &uri).await?;
    let now_ms = state.clock.wall_ms();
    let ticket = find_ticket(&state, &id).await?;
    let history = state.store.ticket_history(&id).await?;
    let audit = state.store.ticket_audit(&id).await?;
    let changes = ticket_changes(&state, &ticket).await?;

    let mut tenant = None;
    if let (true, Some(unit)) = (user.role.sees_personal_data(), &ticket.unit) {
        let directory = state.store.tenants(&ticket.building).await?;
        tenant = directory.into_iter().find(|record| record.unit == *unit);
    }

    let mut links = Vec::new();
    let vendor = current_vendor(&ticket, &changes, &audit);
    let pending_vendor = vendor.clone().filter(|v| ticket.vendor.as_ref() != Some(v));
    if let (true, Some(vendor), false) = (
        user.role.may_act(),
        vendor,
        view::is_finished(&ticket.state),
    ) {
        let base = base_url(&state, &headers);
        for action in VendorAction::ALL {
            let link = VendorLink {
                ticket: ticket.id.clone(),
                vendor: vendor.clone(),
                action,
                expires_ms: now_ms + state.config.vendor_link_ms,
            };
            let query = link.query(state.config.secret.expose().as_bytes());
            links.push((action, format!("{base}/vendor/status?{query}")));
        }
    }

    let notice = notice_text(&notice);
    let page = pages::ticket_page(&pages::TicketPage {
        user: &user,
        now_ms,
        ticket: &ticket,
        history: &history,
        audit: &audit,
        changes: &changes,
        tenant: tenant.as_ref(),
        pending_vendor: pending_vendor.as_deref(),
        vendor_links: &links,
        notice: notice.as_deref(),
    });
    Ok(html_response(StatusCode::OK, page))
}

#[derive(Debug, Default, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    note: Option<String>,
    vendor: Option<String>,
    slot_start: Option<String>,
    slot_end: Option<String>,
}

/// Returns a trimmed, non-empty form field, or `None`; rejects one longer than `max_chars`.
fn form_text(
    value: Option<&str>,
    name: &str,
    max_chars: usize,
) -> Result<Option<String>, PageError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max_chars {
        return Err(PageError::BadRequest(format!(
            "The {name} has more than {max_chars} characters; shorten it."
        )));
    }
    Ok(Some(value.to_string()))
}

fn form_time(value: Option<&str>, name: &str) -> Result<Option<i64>, PageError> {
    let Some(text) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    view::parse_input_time(text).map(Some).ok_or_else(|| {
        PageError::BadRequest(format!(
            "The {name} {text:?} is not a date and time; give it as YYYY-MM-DDTHH:MM (UTC)."
        ))
    })
}

/// Builds the office change that a ticket action form requests.
fn action_change(ticket: &str, action: &str, form: &ActionForm) -> Result<Change, PageError> {
    let note = form_text(form.note.as_deref(), "note", MAX_NOTE_CHARS)?;
    let slot_start_ms = form_time(form.slot_start.as_deref(), "slot start")?;
    let slot_end_ms = form_time(form.slot_end.as_deref(), "slot end")?;
    if let (Some(start), Some(end)) = (slot_start_ms, slot_end_ms) {
        if end <= start {
            return Err(PageError::BadRequest(
                "The slot ends before it starts; give an end after the start.".to_string(),
            ));
        }
    }
    if slot_end_ms.is_some() && slot_start_ms.is_none() {
        return Err(PageError::BadRequest(
            "The slot has an end but no start; give both.".to_string(),
        ));
    }
    let mut vendor = None;
    let (action, slot_start_ms, slot_end_ms) = match action {
        "acknowledge" => (TicketAction::Acknowledge, None, None),
        "close" => (TicketAction::Close, None, None),
        "cancel" => (TicketAction::Cancel, None, None),
        "assign" => {
            vendor = form_text(form.vendor.as_deref(), "vendor", MAX_VENDOR_CHARS)?;
            if vendor.is_none() {
                return Err(PageError::BadRequest(
                    "No vendor given; enter the vendor's name.".to_string(),
                ));
            }
            (TicketAction::Assign, slot_start_ms, slot_end_ms)
        }
        "reschedule" => {
            if slot_start_ms.is_none() || slot_end_ms.is_none() {
                return Err(PageError::BadRequest(
                    "A new slot needs a start and an end.".to_string(),
                ));
            }
            (TicketAction::Reschedule, slot_start_ms, slot_end_ms)
        }
        other => {
            return Err(PageError::NotFound(format!(
                "{other:?} is not a ticket action; use acknowledge, assign, reschedule, close or \
                 cancel."
            )))
        }
    };
    Ok(Change::Ticket {
        ticket: ticket.to_string(),
        action,
        vendor,
        slot_start_ms,
        slot_end_ms,
        note,
    })
}

/// Checks a close or cancel against the ticket's last synced state with the gateway's state
/// machine, so that the user sees at once a change the gateway would reject. Returns the
/// message for the user in that case.
fn check_final_action(ticket: &str, current_state: &str, action: &str) -> Result<(), String> {
    let target = match action {
        "close" => TicketState::Closed,
        "cancel" => TicketState::Cancelled,
        _ => return Ok(()),
    };
    let Some(current) = TicketState::parse(current_state) else {
        return Ok(());
    };
    if state::check(current, target).is_ok() {
        return Ok(());
    }
    Err(format!(
        "Ticket {ticket} is {current}, and a ticket is closed only once its job is resolved; \
         cancel it to call off the job, or wait for the vendor to report it done."
    ))
}

async fn ticket_action(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let (user, _) = require_session(&state, &headers, &uri).await?;
    check_form(&state, &headers, &user, &form.csrf)?;

    if !user.role.may_act() {
        return Err(PageError::Forbidden(format!(
            "The role {} may not change tickets; ask an admin for the office role.",
            user.role.as_str()
        )));
    }
    let ticket = find_ticket(&state, &id).await?;
    if view::is_finished(&ticket.state) {
        return Err(PageError::Conflict(format!(
            "Ticket {} is {}, so it takes no more actions.",
            ticket.id, ticket.state
        )));
    }

    let change = action_change(&ticket.id, &action, &form)?;
    check_final_action(&ticket.id, &ticket.state, &action).map_err(PageError::Conflict)?;
    let actor = format!("office:{}", user.user);
    let now_ms = state.clock.wall_ms();
    let recorded = state
        .store
        .add_change(&ticket.building, &actor, change, now_ms)
        .await?;
    tracing::info!(
        ticket = %ticket.id,
        building = %ticket.building,
        user = %user.user,
        action = %action,
        change = recorded.id,
        "office change recorded"
    );
    let location = format!(
        "{}?done={}&change={}",
        pages::ticket_path(&ticket.id),
        action,
        recorded.id
    );
    Ok(Redirect::to(&location).into_response())
}

#[derive(Debug, Deserialize)]
struct DaysQuery {
    days: Option<i64>,
    building: Option<String>,
}

impl DaysQuery {
    /// Returns the days to look back, 7 by default, kept within 1 to 90.
    fn days(&self) -> i64 {
        self.days.unwrap_or(7).clamp(1, 90)
    }
}

async fn building_page(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Path(building): Path<String>,
    Query(query): Query<DaysQuery>,
) -> Result<Response, PageError> {
    let (user, _) = require_session(&state, &headers, &uri).await?;
    let now_ms = state.clock.wall_ms();
    let days = query.days();
    let gateways: Vec<_> = state
        .store
        .gateway_statuses(now_ms, state.config.heartbeat_stale_ms)
        .await?
        .into_iter()
        .filter(|gateway| gateway.building == building)
        .collect();
    let anomalies: Vec<_> = state
        .store
        .anomalies(&building, now_ms - days * DAY_MS)
        .await?
        .iter()
        .map(|row| view::anomaly_view(&row.payload, row.ts_ms, row.ticket.as_deref()))
        .collect();
    if gateways.is_empty() && anomalies.is_empty() {
        let known = state.store.buildings().await?;
        if !known.contains(&building) {
            return Err(PageError::NotFound(format!(
                "No building is named {building:?}."
            )));
        }
    }
    let page = pages::building_page(&pages::BuildingPage {
        user: &user,
        refresh_secs: state.config.refresh_secs,
        building: &building,
        gateways: &gateways,
        anomalies: &anomalies,
        days,
    });
    Ok(html_response(StatusCode::OK, page))
}

async fn export_tickets(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Query(filter): Query<ListFilter>,
) -> Result<Response, PageError> {
    let (user, _) = require_session(&state, &headers, &uri).await?;
    let mut tickets = state.store.list_tickets(&store_filter(&filter)).await?;
    view::sort_tickets(&mut tickets);
    let body = export::tickets_csv(&tickets, user.role.sees_personal_data())
        .map_err(|error| PageError::Internal(format!("tickets CSV: {error}")))?;
    Ok(csv_response("tickets.csv", body))
}

async fn export_readings(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<DaysQuery>,
) -> Result<Response, PageError> {
    require_session(&state, &headers, &uri).await?;
    let since_ms = state.clock.wall_ms() - query.days() * DAY_MS;
    let buildings = match query.building.as_deref().map(str::trim) {
        Some(building) if !building.is_empty() => vec![building.to_string()],
        _ => state.store.buildings().await?,
    };
    let mut rows = Vec::new();
    for building in &buildings {
        for telemetry in state.store.telemetry(building, since_ms).await? {
            rows.extend(view::reading_summaries(
                building,
                &telemetry.gateway,
                &telemetry.payload,
                telemetry.ts_ms,
            ));
        }
    }
    let body = export::readings_csv(&rows)
        .map_err(|error| PageError::Internal(format!("readings CSV: {error}")))?;
    Ok(csv_response("readings.csv", body))
}

/// Checks a vendor status link against the store: the ticket exists, is not finished, and is
/// still assigned to the link's vendor.
async fn checked_link(
    state: &DashboardState,
    params: &LinkParams,
) -> Result<(VendorLink, TicketRow, Vec<OfficeChange>), PageError> {
    let now_ms = state.clock.wall_ms();
    let link = VendorLink::verify(params, state.config.secret.expose().as_bytes(), now_ms)
        .map_err(|error| {
            if !matches!(error, LinkError::Expired { .. }) {
                tracing::warn!(%error, "vendor status link rejected");
            }
            PageError::Forbidden(format!("This status link cannot be used: {error}."))
        })?;
    let ticket = find_ticket(state, &link.ticket).await?;
    if view::is_finished(&ticket.state) {
        return Err(PageError::Forbidden(format!(
            "Ticket {} is {}; the office needs no more reports for it.",
            ticket.id, ticket.state
        )));
    }
    let changes = ticket_changes(state, &ticket).await?;
    let audit = state.store.ticket_audit(&ticket.id).await?;
    if current_vendor(&ticket, &changes, &audit).as_deref() != Some(link.vendor.as_str()) {
        return Err(PageError::Forbidden(format!(
            "Ticket {} is no longer assigned to {}; ask the office.",
            ticket.id, link.vendor
        )));
    }
    Ok((link, ticket, changes))
}

/// Returns the id of a change in which `actor` already reported `action` after the ticket's
/// latest office assignment.
fn reported_since_assignment(
    changes: &[OfficeChange],
    actor: &str,
    action: VendorAction,
) -> Option<i64> {
    let wanted = action.ticket_action();
    changes
        .iter()
        .rev()
        .take_while(|change| {
            !matches!(
                change.change,
                Change::Ticket {
                    action: TicketAction::Assign,
                    ..
                }
            )
        })
        .find(|change| {
            change.actor == actor
                && matches!(change.change, Change::Ticket { action, .. } if action == wanted)
        })
        .map(|change| change.id)
}

async fn vendor_page(
    State(state): State<DashboardState>,
    Query(params): Query<LinkParams>,
) -> Result<Response, PageError> {
    let (link, ticket, _) = checked_link(&state, &params).await?;
    let query = link.query(state.config.secret.expose().as_bytes());
    let page = pages::vendor_page(&pages::VendorPage {
        link: &link,
        query: &query,
        ticket: &ticket,
        recorded: false,
    });
    Ok(html_response(StatusCode::OK, page))
}

async fn vendor_report(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(params): Query<LinkParams>,
) -> Result<Response, PageError> {
    if !auth::same_origin(&headers, state.config.public_url.as_deref()) {
        return Err(PageError::Forbidden(
            "The report was sent from another site.".to_string(),
        ));
    }
    let (link, ticket, changes) = checked_link(&state, &params).await?;
    let actor = format!("vendor:{}", link.vendor);

    // A second press of the button, or a reload of the confirmation, records nothing new.
    if let Some(earlier) = reported_since_assignment(&changes, &actor, link.action) {
        tracing::info!(
            ticket = %ticket.id,
            vendor = %link.vendor,
            action = %link.action,
            change = earlier,
            "vendor status report already recorded"
        );
    } else {
        let change = Change::Ticket {
            ticket: ticket.id.clone(),
            action: link.action.ticket_action(),
            vendor: Some(link.vendor.clone()),
            slot_start_ms: None,
            slot_end_ms: None,
            note: None,
        };
        let recorded = state
            .store
            .add_change(&ticket.building, &actor, change, state.clock.wall_ms())
            .await?;
        tracing::info!(
            ticket = %ticket.id,
            vendor = %link.vendor,
            action = %link.action,
            change = recorded.id,
            "vendor status report recorded"
        );
    }
    let query = link.query(state.config.secret.expose().as_bytes());
    let page = pages::vendor_page(&pages::VendorPage {
        link: &link,
        query: &query,
        ticket: &ticket,
        recorded: true,
    });
    Ok(html_response(StatusCode::OK, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(vendor: Option<&str>, start: Option<&str>, end: Option<&str>) -> ActionForm {
        ActionForm {
            csrf: String::new(),
            note: Some("  ".into()),
            vendor: vendor.map(str::to_string),
            slot_start: start.map(str::to_string),
            slot_end: end.map(str::to_string),
        }
    }

    #[test]
    fn assign_builds_change() {
        let change = action_change(
            "B1-000001",
            "assign",
            &form(
                Some(" Aqua "),
                Some("2026-01-01T10:00"),
                Some("2026-01-01T12:00"),
            ),
        )
        .unwrap();
        let Change::Ticket {
            action,
            vendor,
            slot_start_ms,
            slot_end_ms,
            note,
            ..
        } = change
        else {
            panic!("not a ticket change");
        };
        assert_eq!(action, TicketAction::Assign);
        assert_eq!(vendor.as_deref(), Some("Aqua"));
        assert_eq!(slot_end_ms.unwrap() - slot_start_ms.unwrap(), 2 * 3_600_000);
        assert_eq!(note, None);
    }

    #[test]
    fn assign_without_vendor_rejected() {
        let outcome = action_change("B1-000001", "assign", &form(Some(""), None, None));
        assert!(
            matches!(outcome, Err(PageError::BadRequest(_))),
            "{outcome:?}"
        );
    }

    #[test]
    fn reschedule_needs_ordered_slot() {
        let missing = action_change("B1-000001", "reschedule", &form(None, None, None));
        assert!(matches!(missing, Err(PageError::BadRequest(_))));
        let backwards = action_change(
            "B1-000001",
            "reschedule",
            &form(None, Some("2026-01-01T12:00"), Some("2026-01-01T10:00")),
        );
        assert!(matches!(backwards, Err(PageError::BadRequest(_))));
        let bad_time = action_change(
            "B1-000001",
            "reschedule",
            &form(None, Some("noon"), Some("2026-01-01T10:00")),
        );
        assert!(
            matches!(bad_time, Err(PageError::BadRequest(message)) if message.contains("noon"))
        );
    }

    #[test]
    fn cancel_action_builds_change() {
        let change = action_change("B1-000001", "cancel", &form(None, None, None)).unwrap();
        assert!(matches!(
            change,
            Change::Ticket {
                action: TicketAction::Cancel,
                ..
            }
        ));
    }

    #[test]
    fn close_before_resolved_rejected() {
        let message = check_final_action("B1-000001", "scheduled", "close").unwrap_err();
        assert!(message.contains("scheduled"), "{message}");
        assert!(message.contains("cancel"), "{message}");
        assert!(check_final_action("B1-000001", "resolved", "close").is_ok());
        assert!(check_final_action("B1-000001", "escalated", "close").is_ok());
        assert!(check_final_action("B1-000001", "scheduled", "cancel").is_ok());
        assert!(check_final_action("B1-000001", "scheduled", "assign").is_ok());
    }

    #[test]
    fn unknown_action_not_found() {
        let outcome = action_change("B1-000001", "delete", &form(None, None, None));
        assert!(matches!(outcome, Err(PageError::NotFound(_))));
    }

    #[test]
    fn long_note_rejected() {
        let mut long = form(None, None, None);
        long.note = Some("x".repeat(MAX_NOTE_CHARS + 1));
        let outcome = action_change("B1-000001", "close", &long);
        assert!(matches!(outcome, Err(PageError::BadRequest(_))));
    }

    #[test]
    fn pending_assignment_names_vendor() {
        let mut ticket = super::super::view::tests::ticket("B1-000001", "new", "urgent");
        ticket.vendor = Some("Old".into());
        ticket.updated_ms = 100;
        let change = |ts_ms, vendor: &str| OfficeChange {
            id: ts_ms,
            ts_ms,
            actor: "office:ida".into(),
            change: Change::Ticket {
                ticket: "B1-000001".into(),
                action: TicketAction::Assign,
                vendor: Some(vendor.into()),
                slot_start_ms: None,
                slot_end_ms: None,
                note: None,
            },
        };
        assert_eq!(current_vendor(&ticket, &[], &[]).as_deref(), Some("Old"));
        assert_eq!(
            current_vendor(&ticket, &[change(50, "Older")], &[]).as_deref(),
            Some("Old")
        );
        let changes = [change(150, "New"), change(160, "Newest")];
        assert_eq!(
            current_vendor(&ticket, &changes, &[]).as_deref(),
            Some("Newest")
        );

        // An assignment that the gateway rejected is not pending.
        let rejection = AuditEntry {
            ticket: "B1-000001".into(),
            ts_ms: 170,
            actor: "office:ida".into(),
            action: "office_change.rejected".into(),
            detail: serde_json::json!({
                "change": 160, "field": "vendor", "value": "Newest", "reason": "unknown vendor",
            }),
            hash: String::new(),
        };
        assert_eq!(
            current_vendor(&ticket, &changes, std::slice::from_ref(&rejection)).as_deref(),
            Some("New")
        );
        assert_eq!(
            current_vendor(&ticket, &[change(160, "Newest")], &[rejection]).as_deref(),
            Some("Old")
        );
    }

    #[test]
    fn repeated_vendor_report_detected() {
        let change = |id, actor: &str, action| OfficeChange {
            id,
            ts_ms: id,
            actor: actor.into(),
            change: Change::Ticket {
                ticket: "B1-000001".into(),
                action,
                vendor: Some("Aqua".into()),
                slot_start_ms: None,
                slot_end_ms: None,
                note: None,
            },
        };
        let reported = [
            change(1, "office:ida", TicketAction::Assign),
            change(2, "vendor:Aqua", TicketAction::OnTheWay),
        ];
        let on_the_way = VendorAction::OnTheWay;
        assert_eq!(
            reported_since_assignment(&reported, "vendor:Aqua", on_the_way),
            Some(2)
        );
        assert_eq!(
            reported_since_assignment(&reported, "vendor:Aqua", VendorAction::Done),
            None
        );
        assert_eq!(
            reported_since_assignment(&reported, "vendor:Other", on_the_way),
            None
        );
        let reassigned = [
            change(2, "vendor:Aqua", TicketAction::OnTheWay),
            change(3, "office:ida", TicketAction::Assign),
        ];
        assert_eq!(
            reported_since_assignment(&reassigned, "vendor:Aqua", on_the_way),
            None
        );
    }

    #[test]
    fn notice_only_for_known_actions() {
        let known = NoticeQuery {
            done: Some("assign".into()),
            change: Some(4),
        };
        assert!(notice_text(&known).unwrap().contains("#4"));
        let unknown = NoticeQuery {
            done: Some("<script>".into()),
            change: None,
        };
        assert_eq!(notice_text(&unknown), None);
    }
}
