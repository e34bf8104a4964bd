//! The console's event socket, `GET /ws`: one WebSocket per console tab,
//! authenticated by the session cookie like any API request (an
//! unauthenticated upgrade gets 401 before any handshake).
//!
//! Events are JSON objects with a `type`: `hello` once on connect, then
//! `pop` for each inbound call the user may see. Screen-pops are filtered
//! per connection by [`pop_for`]: the parties are cut to the ones the
//! actor's team scope sees, and roles that take no calls receive none.
//! The agent desk's events ([`crate::console::desk::DeskEvent`]: `agent`
//! state changes, `connected` card pops, `call_ended`) go to the agent they
//! concern and to supervisors and admins
//! ([`crate::console::desk::event_for`]).

use crate::auth::{Auth, SESSION_COOKIE};
use crate::state::AppState;
use crate::telephony::ScreenPop;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crm::{Actor, Role};
use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Keeps idle sockets alive through proxies that drop silent connections.
const PING_EVERY: Duration = Duration::from_secs(25);
/// How often an open socket re-checks its session, so a logout or an
/// expired session also ends the live feed.
const RECHECK_SESSION: Duration = Duration::from_secs(60);

/// Whether a role takes inbound calls (and so receives screen-pops).
/// Supervisors and admins watch the wallboard's ringing calls.
pub fn receives_calls(role: Role) -> bool {
    !matches!(role, Role::Marketer)
}

/// The pop as this actor may see it: parties owned outside the actor's
/// scope are removed; `None` when the role takes no calls.
pub fn pop_for(actor: &Actor, pop: &ScreenPop) -> Option<ScreenPop> {
    if !receives_calls(actor.role) {
        return None;
    }
    let mut p = pop.clone();
    p.parties.retain(|c| actor.sees(c.owner_id));
    Some(p)
}

/// A pop as the socket's JSON text: `{"type":"pop", …the pop's fields}`.
pub fn pop_text(pop: &ScreenPop) -> Option<String> {
    let body = serde_json::to_string(pop).ok()?;
    Some(format!("{{\"type\":\"pop\",{}", body.strip_prefix('{')?))
}

/// Browsers always send `Origin` on WebSocket handshakes; refusing foreign
/// origins stops another site from opening a socket with our cookie
/// (cross-site WebSocket hijacking), on top of the SameSite cookie.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    origin_host.eq_ignore_ascii_case(host)
}

/// `GET /ws`. `Auth` is extracted first, so a request without a valid
/// session is answered 401 whether or not it is a proper upgrade.
pub async fn upgrade(State(st): State<AppState>, Auth(actor): Auth, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-origin WebSocket refused").into_response();
    }
    let session = cookie_in(&headers, SESSION_COOKIE).map(str::to_string);
    ws.on_upgrade(move |socket| serve(socket, st, actor, session))
}

/// A cookie's value from raw headers (the upgrade handler has no `Parts`).
pub(crate) fn cookie_in<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn serve(mut socket: WebSocket, st: AppState, actor: Actor, session: Option<String>) {
    let hello = json!({"type": "hello", "user": actor.username, "role": actor.role, "pops": st.pops.is_some()});
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    let mut pops = st.pops.as_ref().map(|p| p.subscribe());
    let mut desk = st.desk.subscribe();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut recheck = tokio::time::interval(RECHECK_SESSION);
    recheck.reset();
    loop {
        tokio::select! {
            ev = next_pop(&mut pops) => {
                let Some(pop) = ev else { continue };
                if !receives_calls(actor.role) {
                    continue;
                }
                // Most sockets see every party of a pop: they share one
                // rendering of it; the others get their own cut.
                let text = if pop.parties.iter().all(|c| actor.sees(c.owner_id)) {
                    st.desk.pop_text(&pop)
                } else {
                    pop_for(&actor, &pop).and_then(|p| pop_text(&p)).map(std::sync::Arc::from)
                };
                let Some(text) = text else { continue };
                if socket.send(Message::Text(text.as_ref().into())).await.is_err() {
                    break;
                }
            }
            ev = desk.recv() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => std::future::pending().await,
                };
                let Some(ev) = crate::console::desk::event_for(&actor, &ev) else { continue };
                let Ok(text) = serde_json::to_string(&ev) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // The client sends nothing we act on yet; a close or error ends it.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
            _ = recheck.tick() => {
                let valid = match &session {
                    Some(t) => st.store.session_actor(t).await.is_ok(),
                    // Bearer-token sockets (API clients) are not re-checked.
                    None => true,
                };
                if !valid {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    }
}

/// The next pop, skipping over a lag (a slow tab misses pops rather than
/// stalling the broadcast); pending forever when telephony is off.
async fn next_pop(rx: &mut Option<tokio::sync::broadcast::Receiver<ScreenPop>>) -> Option<ScreenPop> {
    let Some(r) = rx.as_mut() else {
        return std::future::pending().await;
    };
    match r.recv().await {
        Ok(p) => Some(p),
        Err(RecvError::Lagged(n)) => {
            tracing::warn!(missed = n, "console socket lagged behind screen-pops");
            None
        }
        Err(RecvError::Closed) => {
            *rx = None;
            None
        }
    }
}
