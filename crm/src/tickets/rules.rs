//! Rules as data: assignment triggers on new tickets, scheduled automatic
//! rules and notification rules, evaluated by the server.

use super::*;

/// What happened to a ticket, for notification rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Created,
    Solved,
    Closed,
    SlaWarning,
    SlaBreach,
}

pub(crate) async fn on_ticket_created(_tx: &mut Tx, _t: TicketNo, _now: Millis) -> Result<()> {
    Ok(())
}

pub(crate) async fn notify(_tx: &mut Tx, _t: TicketNo, _trigger: Trigger, _now: Millis) -> Result<()> {
    Ok(())
}
