//! The composition of the campaign workers beyond email: the bounce and
//! notification mailbox reader ([`mailgate::bounces_in`]) and the SMS
//! sender over SMPP ([`mailgate::smpp`]), each started only when its
//! `[campaigns]` keys are set. No HTTP here; `tracking` starts them.

use crate::config::RawCampaigns;
use anyhow::{Context, bail};
use mailgate::smpp::{SmppClient, SmppConfig, SmsSender, run_receipts};
use mailgate::{MailboxConfig, Secret, Security};
use std::time::Duration;
use tracing::warn;

/// The bounce mailbox's IMAP settings, if `bounce_mailbox` is set.
pub fn bounce_mailbox(cfg: &RawCampaigns) -> anyhow::Result<Option<MailboxConfig>> {
    let Some(addr) = &cfg.bounce_mailbox else { return Ok(None) };
    let (host, port) = addr.rsplit_once(':').context("campaigns.bounce_mailbox: HOST:PORT")?;
    let security = match cfg.bounce_security.as_deref().unwrap_or("tls") {
        "plain" => Security::Plain,
        "tls" => Security::Tls,
        other => bail!("campaigns.bounce_security: {other:?} is not plain or tls"),
    };
    let user = cfg.bounce_user.clone().context("campaigns.bounce_user is required with bounce_mailbox")?;
    let password = Secret::new(cfg.bounce_password.clone().context("campaigns.bounce_password is required with bounce_mailbox")?);
    // The centre is unused: bounces never become tickets.
    let mut mb = MailboxConfig::new(host, port.parse().context("campaigns.bounce_mailbox: port")?, security, user, password, crm::tickets::ServiceCentreId(0));
    if let Some(f) = &cfg.bounce_folder {
        mb = mb.folder(f.clone());
    }
    mb.sync.poll = Duration::from_secs(10);
    Ok(Some(mb))
}

/// Binds to the SMSC and starts the SMS sender and the receipt consumer,
/// if `smpp` is set. A failed bind is logged and retried by the sender
/// loop below (the SMSC may come up after us).
pub async fn start_sms(store: &crm::Store, cfg: &RawCampaigns, stop: &tokio::sync::watch::Sender<bool>) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let Some(addr) = &cfg.smpp else { return Ok(vec![]) };
    let mut c = SmppConfig::new(addr.clone(), cfg.smpp_system_id.as_deref().unwrap_or("centralino"), cfg.smpp_password.as_deref().unwrap_or(""));
    if let Some(s) = &cfg.smpp_source {
        c.source = s.clone();
    }
    let store = store.clone();
    let mut shutdown = stop.subscribe();
    Ok(vec![tokio::spawn(async move {
        while !*shutdown.borrow() {
            match SmppClient::connect(c.clone()).await {
                Ok((client, receipts)) => {
                    let dlr = tokio::spawn(run_receipts(store.clone(), receipts));
                    SmsSender::new(client.clone()).run(store.clone(), Duration::from_secs(1), shutdown.clone()).await;
                    client.unbind().await;
                    dlr.abort();
                }
                Err(e) => warn!(error = %e, "SMSC bind failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shutdown.changed() => {}
            }
        }
    })])
}
