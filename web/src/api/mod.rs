//! The JSON REST API. Each submodule holds the handlers of one resource;
//! [`router`] wires them, and [`ApiDoc`] is the OpenAPI document generated
//! from the handlers' annotations (served at `/api/openapi.json`).

pub mod campaigns;
pub mod data;
pub mod dialer;
pub mod messaging;
pub mod parties;
pub mod sales;
pub mod session;
pub mod tickets;
pub mod tracking;
pub mod users;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post, put};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "centralino API", description = "CRM, dialer, support desk and campaign messaging."),
    paths(
        session::login, session::logout, session::whoami, session::create_token,
        users::list, users::create, users::get, users::list_teams, users::create_team,
        parties::search, parties::create, parties::get, parties::update, parties::delete,
        parties::history, parties::calls, parties::set_consent, parties::by_phone, parties::by_email,
        sales::list_deals, sales::create_deal, sales::get_deal, sales::update_deal, sales::delete_deal, sales::deal_history,
        sales::list_rules, sales::create_rule,
        sales::list_activities, sales::create_activity, sales::get_activity, sales::update_activity, sales::delete_activity,
        sales::complete_activity, sales::graph, sales::create_action_type, sales::create_outcome, sales::create_state,
        sales::set_relation, sales::remove_relation, sales::leaderboard,
        data::lists, data::create_list, data::get_list, data::update_list, data::delete_list, data::members, data::add_members,
        data::freeze, data::preview, data::duplicates, data::scan, data::merge, data::dismiss, data::import,
        tickets::list, tickets::create, tickets::get, tickets::update, tickets::reply, tickets::apply_reason, tickets::split, tickets::outbox,
        tickets::list_centres, tickets::create_centre, tickets::create_calendar, tickets::set_sla_policy, tickets::sla_report,
        tickets::list_reasons, tickets::create_reason, tickets::list_rules, tickets::create_rule, tickets::get_rule, tickets::update_rule,
        tickets::delete_rule, tickets::run_jobs, tickets::create_article, tickets::get_article, tickets::update_article, tickets::delete_article,
        tickets::search, tickets::public_search, tickets::public_article, tickets::rate, tickets::rate_with_comment, tickets::feedback_report, tickets::attachment,
        campaigns::create, campaigns::get, campaigns::resume, campaigns::add_message, campaigns::save_template, campaigns::preview, campaigns::launch,
        campaigns::monitor, campaigns::list_from_results, campaigns::timeline,
        dialer::list, dialer::create, dialer::get_one, dialer::update, dialer::delete, dialer::load, dialer::add_dnc, dialer::leads,
        dialer::start, dialer::stop, dialer::stats, dialer::agent, dialer::dispose_http, dialer::preview_dial, dialer::preview_skip, dialer::attempts,
    ),
    components(schemas(crate::error::Problem)),
    tags((name = "session"), (name = "users"), (name = "parties"), (name = "deals"), (name = "activities"), (name = "outcomes"), (name = "lists"), (name = "tickets"), (name = "kb"), (name = "feedback"), (name = "campaigns"), (name = "dialer"))
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(session::login))
        .route("/api/auth/logout", post(session::logout))
        .route("/api/me", get(session::whoami))
        .route("/api/tokens", post(session::create_token))
        .route("/api/users", get(users::list).post(users::create))
        .route("/api/users/{id}", get(users::get))
        .route("/api/teams", get(users::list_teams).post(users::create_team))
        .route("/api/parties", get(parties::search).post(parties::create))
        .route("/api/parties/{id}", get(parties::get).patch(parties::update).delete(parties::delete))
        .route("/api/parties/{id}/history", get(parties::history))
        .route("/api/parties/{id}/calls", get(parties::calls))
        .route("/api/parties/{id}/consents/{channel}", put(parties::set_consent))
        .route("/api/lookup/phone/{number}", get(parties::by_phone))
        .route("/api/lookup/email/{email}", get(parties::by_email))
        .route("/api/deals", get(sales::list_deals).post(sales::create_deal))
        .route("/api/deals/{id}", get(sales::get_deal).patch(sales::update_deal).delete(sales::delete_deal))
        .route("/api/deals/{id}/history", get(sales::deal_history))
        .route("/api/assignment-rules", get(sales::list_rules).post(sales::create_rule))
        .route("/api/activities", get(sales::list_activities).post(sales::create_activity))
        .route("/api/activities/{id}", get(sales::get_activity).patch(sales::update_activity).delete(sales::delete_activity))
        .route("/api/activities/{id}/complete", post(sales::complete_activity))
        .route("/api/outcome-graph", get(sales::graph))
        .route("/api/action-types", post(sales::create_action_type))
        .route("/api/outcomes", post(sales::create_outcome))
        .route("/api/commercial-states", post(sales::create_state))
        .route("/api/relations", put(sales::set_relation))
        .route("/api/relations/{action_type_id}/{outcome_id}", axum::routing::delete(sales::remove_relation))
        .route("/api/leaderboard", get(sales::leaderboard))
        .route("/api/lists", get(data::lists).post(data::create_list))
        .route("/api/lists/preview", post(data::preview))
        .route("/api/lists/{id}", get(data::get_list).patch(data::update_list).delete(data::delete_list))
        .route("/api/lists/{id}/members", get(data::members).post(data::add_members))
        .route("/api/lists/{id}/freeze", post(data::freeze))
        .route("/api/parties/{id}/duplicates", get(data::duplicates))
        .route("/api/parties/merge", post(data::merge))
        .route("/api/duplicates/scan", post(data::scan))
        .route("/api/duplicates/dismiss", post(data::dismiss))
        .route("/api/import/parties", post(data::import))
        .route("/api/tickets", get(tickets::list).post(tickets::create))
        .route("/api/tickets/{no}", get(tickets::get).patch(tickets::update))
        .route("/api/tickets/{no}/reply", post(tickets::reply))
        .route("/api/tickets/{no}/reason", post(tickets::apply_reason))
        .route("/api/tickets/{no}/split", post(tickets::split))
        .route("/api/tickets/{no}/outbox", get(tickets::outbox))
        .route("/api/service-centres", get(tickets::list_centres).post(tickets::create_centre))
        .route("/api/business-calendars", post(tickets::create_calendar))
        .route("/api/sla-policies", put(tickets::set_sla_policy))
        .route("/api/sla/report", get(tickets::sla_report))
        .route("/api/reason-codes", get(tickets::list_reasons).post(tickets::create_reason))
        .route("/api/ticket-rules", get(tickets::list_rules).post(tickets::create_rule))
        .route("/api/ticket-rules/{id}", get(tickets::get_rule).put(tickets::update_rule).delete(tickets::delete_rule))
        .route("/api/support/jobs", post(tickets::run_jobs))
        .route("/api/kb/articles", post(tickets::create_article))
        .route("/api/kb/articles/{id}", get(tickets::get_article).put(tickets::update_article).delete(tickets::delete_article))
        .route("/api/kb/search", get(tickets::search))
        .route("/api/public/kb/search", get(tickets::public_search))
        .route("/api/public/kb/articles/{id}", get(tickets::public_article))
        .route("/api/feedback/{token}", get(tickets::rate).post(tickets::rate_with_comment))
        .route("/feedback/{token}", get(tickets::feedback_page).post(tickets::feedback_submit))
        .route("/api/tickets/{no}/attachments/{id}", get(tickets::attachment))
        .route("/api/feedback-report", get(tickets::feedback_report))
        .route("/api/campaigns", post(campaigns::create))
        .route("/api/campaigns/{id}", get(campaigns::get))
        .route("/api/campaigns/{id}/resume", post(campaigns::resume))
        .route("/api/campaigns/{id}/messages", post(campaigns::add_message))
        .route("/api/campaign-messages/{id}/template", put(campaigns::save_template))
        .route("/api/campaign-messages/{id}/preview", get(campaigns::preview))
        .route("/api/campaign-messages/{id}/launch", post(campaigns::launch))
        .route("/api/campaign-messages/{id}/monitor", get(campaigns::monitor))
        .route("/api/campaign-messages/{id}/lists", post(campaigns::list_from_results))
        .route("/api/parties/{id}/campaign-timeline", get(campaigns::timeline))
        .merge(dialer::routes())
}
