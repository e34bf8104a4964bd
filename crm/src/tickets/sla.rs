//! SLA targets per centre and priority on a business-hours calendar.

use super::*;

pub(crate) async fn refresh_dues(_tx: &mut Tx, _t: TicketNo, _now: Millis) -> Result<()> {
    Ok(())
}

pub(crate) async fn record_resolution(_tx: &mut Tx, _t: &Ticket, _now: Millis) -> Result<()> {
    Ok(())
}
