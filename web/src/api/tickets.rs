//! The support desk: queues and tickets with their history, replies,
//! reason codes, split tickets; service centres, calendars and SLA
//! policies; rules; the SLA and feedback reports; the knowledge base (with
//! a public search that needs no login) and the one-click feedback links.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Id, Json, Query};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use crm::now_ms;
use crm::parties::Page;
use crm::tickets::*;
use serde::{Deserialize, Serialize};

/// A ticket number in the path (`T-12345` or `12345`); anything else is 404.
pub struct No(pub TicketNo);

impl<S: Send + Sync> FromRequestParts<S> for No {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw): Path<Vec<String>> = Path::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found("ticket"))?;
        let first = raw.first().ok_or_else(|| ApiError::not_found("ticket"))?;
        TicketNo::parse(first).map(No).map_err(|_| ApiError::not_found("ticket"))
    }
}

// ---- tickets -------------------------------------------------------------

#[utoipa::path(get, path = "/api/tickets", tag = "tickets", params(QueueQuery), responses((status = 200, body = Page<Ticket>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<QueueQuery>) -> ApiResult<axum::Json<Page<Ticket>>> {
    Ok(axum::Json(st.store.list_tickets(&a, &q).await?))
}

#[utoipa::path(post, path = "/api/tickets", tag = "tickets", request_body = TicketInput, responses((status = 201, body = Ticket), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<TicketInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_ticket(&a, body, now_ms()).await?)))
}

#[utoipa::path(get, path = "/api/tickets/{no}", tag = "tickets", params(("no" = String, Path, description = "T-12345")),
    responses((status = 200, body = TicketDetail), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(st): State<AppState>, Auth(a): Auth, No(no): No) -> ApiResult<axum::Json<TicketDetail>> {
    Ok(axum::Json(st.store.ticket_detail(&a, no).await?))
}

#[utoipa::path(patch, path = "/api/tickets/{no}", tag = "tickets", params(("no" = String, Path)), request_body = TicketPatch,
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(State(st): State<AppState>, Auth(a): Auth, No(no): No, Json(body): Json<TicketPatch>) -> ApiResult<axum::Json<Ticket>> {
    Ok(axum::Json(st.store.update_ticket(&a, no, body, now_ms()).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    pub message_id: MessageRowId,
}

#[utoipa::path(post, path = "/api/tickets/{no}/reply", tag = "tickets", params(("no" = String, Path)), request_body = ReplyInput,
    responses((status = 201, body = Created), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn reply(State(st): State<AppState>, Auth(a): Auth, No(no): No, Json(body): Json<ReplyInput>) -> ApiResult<impl IntoResponse> {
    let id = st.store.reply_ticket(&a, no, body, now_ms()).await?;
    Ok((StatusCode::CREATED, axum::Json(Created { message_id: id })))
}

#[utoipa::path(post, path = "/api/tickets/{no}/reason", tag = "tickets", params(("no" = String, Path)), request_body = ApplyReason,
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn apply_reason(State(st): State<AppState>, Auth(a): Auth, No(no): No, Json(body): Json<ApplyReason>) -> ApiResult<axum::Json<Ticket>> {
    Ok(axum::Json(st.store.apply_reason(&a, no, body, now_ms()).await?))
}

#[utoipa::path(post, path = "/api/tickets/{no}/split", tag = "tickets", params(("no" = String, Path)), request_body = SplitInput,
    responses((status = 201, body = Ticket), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn split(State(st): State<AppState>, Auth(a): Auth, No(no): No, Json(body): Json<SplitInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.split_ticket(&a, no, body, now_ms()).await?)))
}

#[utoipa::path(get, path = "/api/tickets/{no}/outbox", tag = "tickets", params(("no" = String, Path)),
    responses((status = 200, body = [OutboundMail]), (status = 403, body = Problem)))]
pub async fn outbox(State(st): State<AppState>, Auth(a): Auth, No(no): No) -> ApiResult<axum::Json<Vec<OutboundMail>>> {
    st.store.get_ticket(&a, no).await?;
    Ok(axum::Json(st.store.ticket_outbox(no).await?))
}

// ---- configuration ---------------------------------------------------------

#[utoipa::path(get, path = "/api/service-centres", tag = "tickets", responses((status = 200, body = [ServiceCentre]), (status = 403, body = Problem)))]
pub async fn list_centres(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<ServiceCentre>>> {
    require_desk(&a)?;
    Ok(axum::Json(st.store.list_centres().await?))
}

#[utoipa::path(post, path = "/api/service-centres", tag = "tickets", request_body = CentreInput,
    responses((status = 201, body = ServiceCentre), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_centre(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<CentreInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_centre(&a, body).await?)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarCreated {
    pub id: CalendarId,
}

#[utoipa::path(post, path = "/api/business-calendars", tag = "tickets", request_body = CalendarInput,
    responses((status = 201, body = CalendarCreated), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_calendar(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<CalendarInput>) -> ApiResult<impl IntoResponse> {
    let id = st.store.create_calendar(&a, body).await?;
    Ok((StatusCode::CREATED, axum::Json(CalendarCreated { id })))
}

#[utoipa::path(put, path = "/api/sla-policies", tag = "tickets", request_body = SlaPolicyInput,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_sla_policy(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<SlaPolicyInput>) -> ApiResult<StatusCode> {
    st.store.set_sla_policy(&a, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/sla/report", tag = "tickets", params(SlaReportQuery), responses((status = 200, body = [SlaReportRow]), (status = 403, body = Problem)))]
pub async fn sla_report(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<SlaReportQuery>) -> ApiResult<axum::Json<Vec<SlaReportRow>>> {
    Ok(axum::Json(st.store.sla_report(&a, &q).await?))
}

#[utoipa::path(get, path = "/api/reason-codes", tag = "tickets", responses((status = 200, body = [ReasonCode]), (status = 403, body = Problem)))]
pub async fn list_reasons(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<ReasonCode>>> {
    Ok(axum::Json(st.store.list_reason_codes(&a).await?))
}

#[utoipa::path(post, path = "/api/reason-codes", tag = "tickets", request_body = ReasonCodeInput,
    responses((status = 201, body = ReasonCode), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_reason(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<ReasonCodeInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_reason_code(&a, body).await?)))
}

// ---- rules -----------------------------------------------------------------

#[utoipa::path(get, path = "/api/ticket-rules", tag = "tickets", responses((status = 200, body = [Rule]), (status = 403, body = Problem)))]
pub async fn list_rules(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<Rule>>> {
    Ok(axum::Json(st.store.list_rules(&a).await?))
}

#[utoipa::path(post, path = "/api/ticket-rules", tag = "tickets", request_body = RuleInput,
    responses((status = 201, body = Rule), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_rule(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<RuleInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_rule(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/ticket-rules/{id}", tag = "tickets", params(("id" = i64, Path)), responses((status = 200, body = Rule), (status = 404, body = Problem)))]
pub async fn get_rule(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Rule>> {
    Ok(axum::Json(st.store.get_rule(&a, RuleId(id)).await?))
}

#[utoipa::path(put, path = "/api/ticket-rules/{id}", tag = "tickets", params(("id" = i64, Path)), request_body = RuleInput,
    responses((status = 200, body = Rule), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_rule(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<RuleInput>) -> ApiResult<axum::Json<Rule>> {
    Ok(axum::Json(st.store.update_rule(&a, RuleId(id), body).await?))
}

#[utoipa::path(delete, path = "/api/ticket-rules/{id}", tag = "tickets", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_rule(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.delete_rule(&a, RuleId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs the desk's jobs at `now` (default: the clock): split-state
/// propagation, scheduled rules, the SLA scan. Supervisors and admins.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobsInput {
    #[serde(default)]
    pub now: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobsReport {
    pub split_parents_changed: Vec<TicketNo>,
    pub rules_fired: Vec<RuleFiring>,
    pub sla_events: Vec<SlaEvent>,
}

#[utoipa::path(post, path = "/api/support/jobs", tag = "tickets", request_body = JobsInput, responses((status = 200, body = JobsReport), (status = 403, body = Problem)))]
pub async fn run_jobs(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<JobsInput>) -> ApiResult<axum::Json<JobsReport>> {
    require_desk_admin(&a)?;
    let now = body.now.unwrap_or_else(now_ms);
    let split_parents_changed = st.store.propagate_split_states(now).await?;
    let rules_fired = st.store.run_scheduled_rules(now).await?;
    let sla_events = st.store.sla_scan(now).await?;
    Ok(axum::Json(JobsReport { split_parents_changed, rules_fired, sla_events }))
}

// ---- knowledge base --------------------------------------------------------

#[utoipa::path(post, path = "/api/kb/articles", tag = "kb", request_body = ArticleInput,
    responses((status = 201, body = Article), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_article(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<ArticleInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_article(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/kb/articles/{id}", tag = "kb", params(("id" = i64, Path)), responses((status = 200, body = Article), (status = 404, body = Problem)))]
pub async fn get_article(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Article>> {
    Ok(axum::Json(st.store.get_article(Some(&a), ArticleId(id)).await?))
}

#[utoipa::path(put, path = "/api/kb/articles/{id}", tag = "kb", params(("id" = i64, Path)), request_body = ArticleInput,
    responses((status = 200, body = Article), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_article(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<ArticleInput>) -> ApiResult<axum::Json<Article>> {
    Ok(axum::Json(st.store.update_article(&a, ArticleId(id), body).await?))
}

#[utoipa::path(delete, path = "/api/kb/articles/{id}", tag = "kb", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_article(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.delete_article(&a, ArticleId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/kb/search", tag = "kb", params(KbQuery), responses((status = 200, body = [Article]), (status = 403, body = Problem)))]
pub async fn search(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<KbQuery>) -> ApiResult<axum::Json<Vec<Article>>> {
    Ok(axum::Json(st.store.search_articles(Some(&a), &q).await?))
}

/// Public: no login, public articles only.
#[utoipa::path(get, path = "/api/public/kb/search", tag = "kb", params(KbQuery), responses((status = 200, body = [Article])))]
pub async fn public_search(State(st): State<AppState>, Query(q): Query<KbQuery>) -> ApiResult<axum::Json<Vec<Article>>> {
    Ok(axum::Json(st.store.search_articles(None, &q).await?))
}

#[utoipa::path(get, path = "/api/public/kb/articles/{id}", tag = "kb", params(("id" = i64, Path)), responses((status = 200, body = Article), (status = 404, body = Problem)))]
pub async fn public_article(State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<Article>> {
    Ok(axum::Json(st.store.get_article(None, ArticleId(id)).await?))
}

// ---- feedback --------------------------------------------------------------

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackComment {
    #[serde(default)]
    pub comment: Option<String>,
}

/// Public: the one-click rating link from the mail. Idempotent; the last
/// click wins. A bad or expired link is 403.
#[utoipa::path(get, path = "/api/feedback/{token}", tag = "feedback", params(("token" = String, Path)),
    responses((status = 200, body = FeedbackRecorded), (status = 403, body = Problem)))]
pub async fn rate(State(st): State<AppState>, Path(token): Path<String>) -> ApiResult<axum::Json<FeedbackRecorded>> {
    Ok(axum::Json(st.store.record_feedback(&token, None, now_ms()).await?))
}

/// Public: the rating with a comment (the comment page posts here).
#[utoipa::path(post, path = "/api/feedback/{token}", tag = "feedback", params(("token" = String, Path)), request_body = FeedbackComment,
    responses((status = 200, body = FeedbackRecorded), (status = 403, body = Problem)))]
pub async fn rate_with_comment(State(st): State<AppState>, Path(token): Path<String>, Json(body): Json<FeedbackComment>) -> ApiResult<axum::Json<FeedbackRecorded>> {
    Ok(axum::Json(st.store.record_feedback(&token, body.comment, now_ms()).await?))
}

/// The comment page's form.
#[derive(Debug, Default, Deserialize)]
pub struct FeedbackForm {
    #[serde(default)]
    pub comment: String,
}

/// Public: the page a rating link in the mail opens. It shows the rating
/// and a form for an optional comment, and records nothing: mail scanners
/// follow every link of a mail, and a GET that recorded would let them
/// click all five ratings. The form posts back to the same signed URL,
/// which authenticates it (no session, no cookie: nothing to forge across
/// sites without the token). Every value shown is escaped.
pub async fn feedback_page(State(st): State<AppState>, Path(token): Path<String>) -> axum::response::Response {
    let secret = match st.store.support_secret().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "feedback page: no secret");
            return feedback_html(StatusCode::SERVICE_UNAVAILABLE, "Please try again later", "<p>We cannot take your rating right now.</p>");
        }
    };
    let Some((ticket, rating)) = parse_feedback_token(&token, &secret, now_ms()) else {
        return feedback_html(StatusCode::FORBIDDEN, "This link is not valid", "<p>The link is wrong or has expired.</p>");
    };
    let stars = "★".repeat(usize::from(rating));
    let body = format!(
        "<p>Your rating for request {t}: <strong aria-label=\"{rating} of 5\">{stars}</strong> ({rating} of 5).</p>\
         <form method=\"post\"><p><label for=\"comment\">Anything to add? (optional)</label><br>\
         <textarea id=\"comment\" name=\"comment\" rows=\"6\" cols=\"50\" maxlength=\"4000\"></textarea></p>\
         <p><button type=\"submit\">Send my rating</button></p></form>",
        t = escape_html(&ticket.to_string()),
    );
    feedback_html(StatusCode::OK, "How did we do?", &body)
}

/// Public: the comment page's form posts here; records the rating of the
/// signed link and the comment (the last rating wins).
pub async fn feedback_submit(State(st): State<AppState>, Path(token): Path<String>, axum::Form(form): axum::Form<FeedbackForm>) -> axum::response::Response {
    let comment = Some(form.comment).filter(|c| !c.trim().is_empty());
    match st.store.record_feedback(&token, comment.clone(), now_ms()).await {
        Ok(r) => {
            let echo = comment.map(|c| format!("<p>Your comment:</p><blockquote>{}</blockquote>", escape_html(c.trim()))).unwrap_or_default();
            feedback_html(StatusCode::OK, "Thank you", &format!("<p>We recorded {} of 5 for request {}.</p>{echo}", r.rating, escape_html(&r.ticket.to_string())))
        }
        Err(crm::Error::Forbidden) => feedback_html(StatusCode::FORBIDDEN, "This link is not valid", "<p>The link is wrong or has expired.</p>"),
        Err(crm::Error::NotFound(_)) => feedback_html(StatusCode::NOT_FOUND, "Nothing to rate", "<p>This request asks for no rating.</p>"),
        Err(e) => {
            tracing::warn!(error = %e, "feedback not recorded");
            feedback_html(StatusCode::SERVICE_UNAVAILABLE, "Please try again later", "<p>We cannot take your rating right now.</p>")
        }
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A small self-contained page: no script, no outside resource, not
/// framable, and the token in the URL is not leaked as a referrer.
fn feedback_html(status: StatusCode, title: &str, body: &str) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{t}</h1>{body}</body></html>",
        t = escape_html(title)
    );
    let mut r = (status, axum::response::Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// An attachment of a ticket's message, for actors who may see the ticket.
/// Served as a download (never rendered inline: it is the customer's file).
#[utoipa::path(get, path = "/api/tickets/{no}/attachments/{id}", tag = "tickets", params(("no" = String, Path), ("id" = i64, Path)),
    responses((status = 200, description = "the file"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn attachment(State(st): State<AppState>, Auth(a): Auth, Path((no, id)): Path<(String, i64)>) -> ApiResult<axum::response::Response> {
    use axum::http::{HeaderValue, header};
    let no = TicketNo::parse(&no).map_err(|_| ApiError::not_found("ticket"))?;
    let (info, data) = st.store.ticket_attachment(&a, no, id).await?;
    let mut r = data.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    let name: String = info.filename.as_deref().unwrap_or("attachment").chars().map(|c| if c.is_ascii_alphanumeric() || ".-_ ".contains(c) { c } else { '_' }).collect();
    let utf8: String = info.filename.as_deref().unwrap_or("attachment").bytes().map(|b| if b.is_ascii_alphanumeric() || b".-_".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"; filename*=UTF-8''{utf8}")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&info.content_type) {
        h.insert("x-original-content-type", v);
    }
    Ok(r)
}

#[utoipa::path(get, path = "/api/feedback-report", tag = "feedback", params(FeedbackQuery), responses((status = 200, body = [FeedbackRow]), (status = 403, body = Problem)))]
pub async fn feedback_report(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<FeedbackQuery>) -> ApiResult<axum::Json<Vec<FeedbackRow>>> {
    Ok(axum::Json(st.store.feedback_report(&a, &q).await?))
}
